import test from 'node:test';
import assert from 'node:assert/strict';
import { OptimizerError } from '../../../shared/errors.js';
import { AdamWState, adamWStep, parseAdamWOptions } from '../../../shared/optim/adamw.js';
import { AdamWThreads, sharedFloat32 } from '../../../shared/optim/adamw-threads.js';
import { decayRanges, type LayoutEntry } from '../../../shared/optim/decay-ranges.js';
import { rngStream } from '../../../shared/random.js';

/** Seeded uniform numbers (shared/random.ts), so every run sees the same "random" data. */
function rng(seed: number): () => number {
  const stream = rngStream(seed);
  return () => stream.uniform();
}

/** A SharedArrayBuffer-backed copy of `values`. */
function shared(values: Float32Array): Float32Array {
  const a = sharedFloat32(values.length);
  a.set(values);
  return a;
}

/** The bits of a float32 array: deepEqual on these tells -0 from 0 and compares NaNs by payload. */
const bits = (a: Float32Array) => new Uint32Array(a.slice().buffer);

const HYPER = parseAdamWOptions({ adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8, weight_decay: 0.1 });

// Decayed weights, undecayed norms and biases, padding between entries (in no range), sizes not
// multiples of 16; the rank owns [START, END) and cuts the first and last entries.
const LAYOUT: LayoutEntry[] = [
  { name: 'encoder.block.0.layer.0.SelfAttention.q.weight', offset: 0, size: 301 },
  { name: 'encoder.block.0.layer.0.layer_norm.weight', offset: 301, size: 19 },
  { name: 'encoder.block.0.layer.1.DenseReluDense.wi.weight', offset: 325, size: 517 },
  { name: 'encoder.block.0.layer.1.DenseReluDense.wi.bias', offset: 842, size: 37 },
  { name: 'encoder.block.0.layer.1.layer_norm.weight', offset: 879, size: 3 },
  { name: 'encoder.final_layer_norm.weight', offset: 890, size: 211 },
  { name: 'lm_head.weight', offset: 1101, size: 333 },
];
const START = 7;
const END = 1421; // 1414 elements: not a multiple of 16
const STEPS = [
  { lr: 1e-3, gradScale: 0.7 },
  { lr: 2e-3, gradScale: 1 },
  { lr: 5e-4, gradScale: 0.3 },
  { lr: 1e-3, gradScale: undefined },
];

test('1, 2 and 3 threads give bit-identical params, m and v to adamWStep over several steps', async () => {
  const random = rng(14);
  const n = END - START;
  const ranges = decayRanges(LAYOUT, START, END);
  assert.ok(ranges.some((r) => r.decay) && ranges.some((r) => !r.decay), 'the data has decayed and undecayed ranges');
  const p0 = Float32Array.from({ length: n }, () => (2 * random() - 1) * 0.5);
  const gradsPerStep = STEPS.map(() => Float32Array.from({ length: n }, () => (random() < 0.5 ? -1 : 1) * 10 ** (-8 * random())));

  const expected = p0.slice();
  const expectedState = new AdamWState(START, END);
  for (const [k, s] of STEPS.entries()) adamWStep(expectedState, HYPER, { params: expected, grads: gradsPerStep[k]!, lr: s.lr, ranges, gradScale: s.gradScale });
  // Not vacuous: every element in a range moved, every padding element did not.
  const inRange = (i: number) => ranges.some((r) => r.start <= START + i && START + i < r.end);
  for (let i = 0; i < n; i++) assert.equal(expected[i] !== p0[i], inRange(i), `element ${i} moved iff in a range`);

  for (const threads of [1, 2, 3]) {
    const optimizer = await AdamWThreads.create(threads);
    try {
      assert.equal(optimizer.threads, threads);
      const params = shared(p0);
      const state = new AdamWState(START, END, { m: sharedFloat32(n), v: sharedFloat32(n), step: 0 });
      for (const [k, s] of STEPS.entries()) {
        await optimizer.step(state, HYPER, { params, grads: shared(gradsPerStep[k]!), lr: s.lr, ranges, gradScale: s.gradScale });
        assert.equal(state.step, k + 1, `${threads} threads: step advances once per step`);
      }
      assert.deepEqual(params, expected, `${threads} threads: params`);
      assert.deepEqual(state.m, expectedState.m, `${threads} threads: m`);
      assert.deepEqual(state.v, expectedState.v, `${threads} threads: v`);
      assert.deepEqual(bits(params), bits(expected), `${threads} threads: params bits`);
      assert.deepEqual(bits(state.m), bits(expectedState.m), `${threads} threads: m bits`);
      assert.deepEqual(bits(state.v), bits(expectedState.v), `${threads} threads: v bits`);
    } finally {
      await optimizer.close();
    }
  }
});

test('more threads than 16-element pieces: some threads get nothing, the result is still identical', async () => {
  const n = 21;
  const ranges = [
    { start: 100, end: 103, decay: true },
    { start: 110, end: 121, decay: false },
  ];
  const grads = Float32Array.from({ length: n }, (_, i) => (i - 10) / 7);
  const expected = new Float32Array(n).fill(0.5);
  const expectedState = new AdamWState(100, 121);
  adamWStep(expectedState, HYPER, { params: expected, grads, lr: 1e-2, ranges });

  const optimizer = await AdamWThreads.create(3);
  try {
    const params = shared(new Float32Array(n).fill(0.5));
    const state = new AdamWState(100, 121, { m: sharedFloat32(n), v: sharedFloat32(n), step: 0 });
    await optimizer.step(state, HYPER, { params, grads: shared(grads), lr: 1e-2, ranges });
    assert.deepEqual(bits(params), bits(expected));
    assert.deepEqual(bits(state.m), bits(expectedState.m));
    assert.equal(state.step, 1);
  } finally {
    await optimizer.close();
  }
});

test('1 thread takes ordinary buffers; more need SharedArrayBuffer views, and say which array is not one', async () => {
  const n = 64;
  const ranges = [{ start: 0, end: n, decay: true }];
  const args = (params: Float32Array, grads: Float32Array) => ({ params, grads, lr: 1e-3, ranges });

  const one = await AdamWThreads.create(1);
  const plainState = new AdamWState(0, n);
  await one.step(plainState, HYPER, args(new Float32Array(n).fill(1), new Float32Array(n).fill(1)));
  assert.equal(plainState.step, 1);
  await one.close();

  const two = await AdamWThreads.create(2);
  try {
    const sharedState = () => new AdamWState(0, n, { m: sharedFloat32(n), v: sharedFloat32(n), step: 0 });
    const cases: Array<[string, () => Promise<void>, RegExp]> = [
      ['params', () => two.step(sharedState(), HYPER, args(new Float32Array(n), sharedFloat32(n))), /params is not a view of a SharedArrayBuffer/],
      ['grads', () => two.step(sharedState(), HYPER, args(sharedFloat32(n), new Float32Array(n))), /grads is not a view of a SharedArrayBuffer/],
      ['state.m', () => two.step(new AdamWState(0, n, { m: new Float32Array(n), v: sharedFloat32(n), step: 0 }), HYPER, args(sharedFloat32(n), sharedFloat32(n))), /state\.m is not/],
      ['state.v', () => two.step(new AdamWState(0, n, { m: sharedFloat32(n), v: new Float32Array(n), step: 0 }), HYPER, args(sharedFloat32(n), sharedFloat32(n))), /state\.v is not/],
      // adamWStep's own validation, unchanged.
      ['bad lr', () => two.step(sharedState(), HYPER, { ...args(sharedFloat32(n), sharedFloat32(n)), lr: NaN }), /learning rate NaN/],
    ];
    for (const [what, step, message] of cases) await assert.rejects(step, (e: unknown) => e instanceof OptimizerError && message.test(e.message), what);
    // The threads are still usable after refused steps.
    const state = sharedState();
    await two.step(state, HYPER, args(sharedFloat32(n).fill(1), sharedFloat32(n).fill(1)));
    assert.equal(state.step, 1);
  } finally {
    await two.close();
  }
  await assert.rejects(two.step(new AdamWState(0, n), HYPER, args(sharedFloat32(n), sharedFloat32(n))), /closed/);
});

test('create refuses a thread count that is not an integer >= 1', async () => {
  for (const threads of [0, -1, 1.5, NaN]) {
    await assert.rejects(AdamWThreads.create(threads), (e: unknown) => e instanceof RangeError && /threads must be an integer >= 1/.test(e.message), String(threads));
  }
});
