import assert from 'node:assert/strict';
import test from 'node:test';
import { rngStream, RngDomain } from '../../../shared/random.js';

const words = (seed: number, keys: number[], n: number): number[] => {
  const s = rngStream(seed, ...keys);
  return Array.from({ length: n }, () => s.nextU32());
};

test('the stream format is pinned: these words must never change (checkpoints and masks depend on them)', () => {
  assert.deepEqual(words(42, [1, 2], 6), [0xa88089f9, 0x300c0838, 0x85c2924a, 0x0c37b11f, 0x26afe5b2, 0x2b671f00]);
  assert.deepEqual(words(0, [], 4), [0x055cc8b5, 0x40ccb400, 0x837a7053, 0x3c6c09a8]);
  assert.deepEqual(words(2 ** 53 - 1, [2 ** 53 - 1], 2), [0xe17d77dc, 0x591ecac7]);
});

test('same seed and keys give the same stream; any change gives a different one', () => {
  const base = words(7, [3, 5], 64);
  assert.deepEqual(words(7, [3, 5], 64), base);
  const variants = [words(8, [3, 5], 64), words(7, [5, 3], 64), words(7, [3, 6], 64), words(7, [3], 64), words(7, [3, 5, 0], 64), words(7, [], 64)];
  for (const v of variants) assert.notDeepEqual(v, base);
  // Keys beyond 32 bits are not truncated.
  assert.notDeepEqual(words(7, [2 ** 32 + 3], 8), words(7, [3], 8));
  assert.notDeepEqual(words(2 ** 32 + 7, [3, 5], 8), words(7, [3, 5], 8));
});

test('seek gives random access: position p continues exactly as after p draws', () => {
  const all = words(11, [RngDomain.dropout, 9], 40);
  for (const p of [0, 1, 3, 4, 5, 17, 32]) {
    const s = rngStream(11, RngDomain.dropout, 9);
    s.seek(p);
    assert.equal(s.position, p);
    assert.deepEqual(Array.from({ length: 8 }, () => s.nextU32()), all.slice(p, p + 8), `seek ${p}`);
  }
  // Far positions (beyond 2^32 blocks) work and differ from near ones.
  const far = rngStream(11, 1);
  far.seek(2 ** 40 + 4);
  const near = rngStream(11, 1);
  near.seek(4);
  assert.notEqual(far.nextU32(), near.nextU32());
});

test('fillU32 (block path) equals word-by-word draws from any starting position', () => {
  for (const start of [0, 1, 2, 3, 6]) {
    for (const n of [0, 1, 3, 4, 5, 13, 4100]) {
      const a = rngStream(5, 1);
      a.seek(start);
      const bulk = new Uint32Array(n);
      a.fillU32(bulk);
      const b = rngStream(5, 1);
      b.seek(start);
      assert.deepEqual([...bulk], Array.from({ length: n }, () => b.nextU32()), `start ${start} n ${n}`);
      assert.equal(a.position, start + n);
      assert.equal(a.nextU32(), b.nextU32());
    }
  }
});

test('fillNormal consumes 2 words per pair and agrees with normal() on even elements', () => {
  const dest = new Float64Array(9); // odd length and longer than nothing: covers the half pair
  const s = rngStream(3, 4);
  s.fillNormal(dest, 0, 1);
  assert.equal(s.position, 10);
  const t = rngStream(3, 4);
  for (let i = 0; i < dest.length; i += 2) assert.equal(dest[i], t.normal());
  // Batches of 4096 words are stitched seamlessly: a long fill equals the concatenation of short ones.
  const long = new Float64Array(10_000);
  rngStream(3, 5).fillNormal(long);
  const pieces = rngStream(3, 5);
  const a = new Float64Array(4098);
  const b = new Float64Array(10_000 - 4098);
  pieces.fillNormal(a);
  pieces.fillNormal(b);
  assert.deepEqual([...long], [...a, ...b]);
  // mean and std are applied as mean + std * z.
  const scaled = new Float64Array(9);
  rngStream(3, 4).fillNormal(scaled, 2, 0.5);
  for (let i = 0; i < 9; i++) assert.equal(scaled[i], 2 + 0.5 * dest[i]!);
});

test('uniform values stay in [0, 1), also after rounding to float32', () => {
  const s = rngStream(1);
  for (let i = 0; i < 10_000; i++) {
    const u = s.uniform();
    assert.ok(u >= 0 && u < 1);
  }
  const f = new Float32Array(100_000);
  rngStream(2).fillUniform(f);
  assert.ok(f.every((u) => u >= 0 && u < 1));
  const g = new Float32Array(1000);
  rngStream(2).fillUniform(g, -3, 5);
  assert.ok(g.every((u) => u >= -3 && u < 5));
});

test('seeds, keys and positions must be non-negative safe integers', () => {
  assert.throws(() => rngStream(-1), RangeError);
  assert.throws(() => rngStream(1.5), RangeError);
  assert.throws(() => rngStream(1, 2 ** 53), RangeError);
  assert.throws(() => rngStream(1, Number.NaN), RangeError);
  assert.throws(() => rngStream(1).seek(-4), RangeError);
});
