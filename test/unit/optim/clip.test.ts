import test from 'node:test';
import assert from 'node:assert/strict';
import { NonFiniteGradientError, OptimizerError } from '../../../shared/errors.js';
import { CLIP_NORM_EPS, ClipOptionsSchema, clipCoefficient, scaleInPlace, sumOfSquares } from '../../../shared/optim/clip.js';

test('sumOfSquares is exact where float64 can be (lengths 0..11)', () => {
  // Small integers: every partial sum is an exact float64 integer, so equality is exact.
  for (let n = 0; n < 12; n++) {
    const x = Float32Array.from({ length: n }, (_, i) => i - 5);
    const expected = Array.from(x).reduce((s, v) => s + v * v, 0);
    assert.equal(sumOfSquares(x), expected, `n=${n}`);
  }
});

test('sumOfSquares accumulates in float64: 2^25 ones sum to 2^25, where float32 stalls at 2^24', () => {
  const ones = new Float32Array(2 ** 25).fill(1);
  assert.equal(sumOfSquares(ones), 2 ** 25);
  let f32 = 0;
  for (let i = 0; i < ones.length; i++) f32 = Math.fround(f32 + 1);
  assert.equal(f32, 2 ** 24, 'the float32 sum the float64 accumulation avoids');
});

test('sumOfSquares does not overflow on huge float32 gradients', () => {
  const big = new Float32Array([3e38, -3e38]);
  const f = big[0]!;
  assert.equal(sumOfSquares(big), 2 * f * f); // ~1.8e77: exact in float64, Infinity in float32
  assert.ok(clipCoefficient(sumOfSquares(big), 1) > 0);
});

test('partial sums of any split add up to the whole (ZeRO all-reduce of squares)', () => {
  const n = 10_001;
  const g = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 10 ** ((i % 7) - 3));
  const whole = sumOfSquares(g);
  for (let world = 1; world <= 5; world++) {
    let total = 0;
    for (let r = 0; r < world; r++) total += sumOfSquares(g.subarray(Math.floor((r * n) / world), Math.floor(((r + 1) * n) / world)));
    // Different float64 summation orders: relative difference bounded by n * 2^-53 ~ 1e-12.
    assert.ok(Math.abs(total - whole) <= 1e-12 * whole, `world ${world}: ${total} vs ${whole}`);
  }
});

test('clipCoefficient: max_norm / (norm + 1e-6) when the norm exceeds max_norm, else 1', () => {
  assert.equal(clipCoefficient(25, 1), 1 / (5 + 1e-6)); // norm 5
  assert.equal(clipCoefficient(4, 0.5), 0.5 / (2 + CLIP_NORM_EPS));
  assert.equal(clipCoefficient(0.25, 1), 1); // norm 0.5: no clipping
  assert.equal(clipCoefficient(1, 1), 1 / (1 + 1e-6)); // norm = max_norm: torch clips by that hair, so do we
  assert.equal(clipCoefficient(0, 1), 1);
  assert.equal(clipCoefficient(100, 0), 1, 'max_grad_norm 0 disables clipping, as in HF Trainer');
});

test('clipCoefficient refuses NaN/Infinity sums with NonFiniteGradientError, and bad max norms', () => {
  assert.throws(() => clipCoefficient(NaN, 1), NonFiniteGradientError);
  assert.throws(() => clipCoefficient(Infinity, 1), NonFiniteGradientError);
  assert.throws(() => clipCoefficient(Infinity, 0), NonFiniteGradientError, 'even with clipping disabled');
  assert.throws(() => clipCoefficient(-1, 1), OptimizerError);
  assert.throws(() => clipCoefficient(1, -1), OptimizerError);
  assert.throws(() => clipCoefficient(1, NaN), OptimizerError);
});

test('clipping end to end: the clipped gradients have norm max_norm * norm / (norm + 1e-6)', () => {
  const g = Float32Array.from({ length: 4097 }, (_, i) => Math.cos(i * 0.37) * (1 + (i % 5)));
  const norm = Math.sqrt(sumOfSquares(g));
  const c = clipCoefficient(sumOfSquares(g), 1);
  assert.ok(c < 1);
  scaleInPlace(g, c);
  // Each scaled element is rounded to float32 once (relative error <= 2^-24), so the norm is off by
  // at most that relative amount.
  assert.ok(Math.abs(Math.sqrt(sumOfSquares(g)) - norm / (norm + CLIP_NORM_EPS)) <= 2 ** -24, `${Math.sqrt(sumOfSquares(g))}`);
});

test('scaleInPlace rounds g * c once; a coefficient of 1 leaves the bits alone', () => {
  const g = new Float32Array([1, -2.5, 3e-8, -0, NaN]);
  const before = g.slice();
  scaleInPlace(g, 1);
  assert.deepEqual(new Uint32Array(g.buffer), new Uint32Array(before.buffer));
  scaleInPlace(g, 0.1);
  for (let i = 0; i < 4; i++) assert.equal(g[i], Math.fround(before[i]! * 0.1));
  assert.ok(Number.isNaN(g[4]));
  assert.throws(() => scaleInPlace(g, Infinity), OptimizerError);
});

test('max_grad_norm uses the HF name and default', () => {
  assert.deepEqual(ClipOptionsSchema.parse({}), { max_grad_norm: 1 });
  assert.equal(ClipOptionsSchema.safeParse({ max_grad_norm: -1 }).success, false);
});
