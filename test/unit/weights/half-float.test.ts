import assert from 'node:assert/strict';
import test from 'node:test';
import { decodeBf16, decodeF16, f16BitsToF32Bits } from '../../../shared/weights/half-float.js';

const f32Bits = (x: Float32Array): number[] => [...new Uint32Array(x.buffer, x.byteOffset, x.length)];

function decodeF16Values(bits: number[]): Float32Array {
  const out = new Float32Array(bits.length);
  decodeF16(Uint16Array.from(bits), out);
  return out;
}

function decodeBf16Values(bits: number[]): Float32Array {
  const out = new Float32Array(bits.length);
  decodeBf16(Uint16Array.from(bits), out);
  return out;
}

test('F16 known bit patterns: normals, extremes, subnormals, zeros, infinities', () => {
  const cases: Array<[number, number]> = [
    [0x3c00, 1],
    [0xc000, -2],
    [0x3555, 0.333251953125],
    [0x7bff, 65504], // largest finite
    [0x0400, 2 ** -14], // smallest normal
    [0x0001, 2 ** -24], // smallest subnormal
    [0x03ff, 1023 * 2 ** -24], // largest subnormal
    [0x8001, -(2 ** -24)],
    [0x0200, 2 ** -15],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ];
  const got = decodeF16Values(cases.map((c) => c[0]));
  cases.forEach(([bits, value], i) => assert.equal(got[i], value, `0x${bits.toString(16)}`));
  const zeros = decodeF16Values([0x0000, 0x8000]);
  assert.ok(Object.is(zeros[0], 0) && Object.is(zeros[1], -0), 'signed zeros');
});

test('F16 NaNs stay NaN with their sign and payload', () => {
  const got = decodeF16Values([0x7e00, 0xfe00, 0x7c01, 0x7e01]);
  assert.ok(got.every(Number.isNaN));
  // Payload bits move up by 13, exactly as a hardware half->float conversion does.
  assert.deepEqual(f32Bits(got), [0x7fc00000, 0xffc00000, 0x7f802000, 0x7fc02000]);
});

test('F16 decoding of all 65536 values agrees with the binary16 definition', () => {
  const all = Array.from({ length: 65536 }, (_, h) => h);
  const got = decodeF16Values(all);
  for (const h of all) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    const v = got[h]!;
    if (e === 0x1f) {
      assert.ok(m === 0 ? v === sign * Infinity : Number.isNaN(v), `0x${h.toString(16)}`);
    } else {
      // Exact in float64, and exactly representable in float32: equality is the right test.
      const expected = sign * (e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
      assert.ok(Object.is(v, expected), `0x${h.toString(16)}: ${v} vs ${expected}`);
    }
  }
  assert.equal(f16BitsToF32Bits(0x3c00), 0x3f800000);
});

test('BF16 known bit patterns: the top half of a float32', () => {
  const cases: Array<[number, number]> = [
    [0x3f80, 1],
    [0xc000, -2],
    [0x4049, 3.140625],
    [0x7f7f, 3.3895313892515355e38], // largest finite
    [0x0080, 2 ** -126], // smallest normal
    [0x0001, 2 ** -133], // smallest subnormal
    [0x807f, -127 * 2 ** -133], // largest negative subnormal
    [0x7f80, Infinity],
    [0xff80, -Infinity],
  ];
  const got = decodeBf16Values(cases.map((c) => c[0]));
  cases.forEach(([bits, value], i) => assert.equal(got[i], value, `0x${bits.toString(16)}`));
  const special = decodeBf16Values([0x0000, 0x8000, 0x7fc0, 0x7fc1, 0xffc0]);
  assert.ok(Object.is(special[0], 0) && Object.is(special[1], -0), 'signed zeros');
  assert.ok([2, 3, 4].every((i) => Number.isNaN(special[i])));
  assert.deepEqual(f32Bits(special).slice(2), [0x7fc00000, 0x7fc10000, 0xffc00000]);
});

test('decoders refuse mismatched lengths', () => {
  assert.throws(() => decodeF16(new Uint16Array(3), new Float32Array(2)), RangeError);
  assert.throws(() => decodeBf16(new Uint16Array(3), new Float32Array(4)), RangeError);
});
