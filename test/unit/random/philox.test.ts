import assert from 'node:assert/strict';
import test from 'node:test';
import { philox4x32 } from '../../../shared/random.js';

// Known-answer vectors of Random123 (kat_vectors, "philox4x32 10": counter[4] key[2] -> output[4]).
const KAT: ReadonlyArray<readonly [readonly number[], readonly number[], readonly number[]]> = [
  [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
  [
    [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
    [0xffffffff, 0xffffffff],
    [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
  ],
  [
    [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
    [0xa4093822, 0x299f31d0],
    [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
  ],
];

test('philox4x32-10 matches the Random123 known answers', () => {
  const out = new Uint32Array(4);
  for (const [c, k, expected] of KAT) {
    philox4x32(c[0]!, c[1]!, c[2]!, c[3]!, k[0]!, k[1]!, out);
    assert.deepEqual([...out], expected);
  }
});

/** Philox4x32-10 in exact BigInt arithmetic, straight from the paper's round function. */
function philoxReference(counter: readonly bigint[], key: readonly bigint[]): bigint[] {
  const mask = 0xffffffffn;
  let [c0, c1, c2, c3] = counter as [bigint, bigint, bigint, bigint];
  let [k0, k1] = key as [bigint, bigint];
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + 0x9e3779b9n) & mask;
      k1 = (k1 + 0xbb67ae85n) & mask;
    }
    const p0 = 0xd2511f53n * c0;
    const p1 = 0xcd9e8d57n * c2;
    [c0, c1, c2, c3] = [((p1 >> 32n) ^ c1 ^ k0) & mask, p1 & mask, ((p0 >> 32n) ^ c3 ^ k1) & mask, p0 & mask];
  }
  return [c0, c1, c2, c3];
}

test('philox4x32 agrees with an exact BigInt reference on 2000 pseudo-random inputs', () => {
  // xorshift32 for inputs: independent of the generator under test; the edges 0 and 2^32-1 are added.
  let x = 0x12345678;
  const next = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const out = new Uint32Array(4);
  for (let i = 0; i < 2000; i++) {
    const w = Array.from({ length: 6 }, () => (i % 97 === 0 ? 0xffffffff : i % 89 === 0 ? 0 : next()));
    philox4x32(w[0]!, w[1]!, w[2]!, w[3]!, w[4]!, w[5]!, out);
    const expected = philoxReference(w.slice(0, 4).map(BigInt), w.slice(4).map(BigInt));
    assert.deepEqual([...out].map(BigInt), expected, `inputs ${w.map((v) => v.toString(16)).join(' ')}`);
  }
});

test('philox4x32 writes at the given offset', () => {
  const out = new Uint32Array(8);
  philox4x32(0, 0, 0, 0, 0, 0, out, 4);
  assert.deepEqual([...out], [0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
});
