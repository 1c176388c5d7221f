import test from 'node:test';
import assert from 'node:assert/strict';
import { InputFileError, OptimizerError } from '../../../shared/errors.js';
import { AdamWState, adamWStep, parseAdamWOptions, type AdamWHyperParams } from '../../../shared/optim/adamw.js';
import { decayRanges, type DecayRange, type LayoutEntry } from '../../../shared/optim/decay-ranges.js';

// --- helpers -------------------------------------------------------------------------------------

/** mulberry32: a small seeded generator, so every run sees the same "random" data. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Gradients spread over 10 decades (1e-10 .. 1), both signs: near eps the denominator's form matters. */
function gradients(n: number, random: () => number): Float32Array {
  const g = new Float32Array(n);
  for (let i = 0; i < n; i++) g[i] = (random() < 0.5 ? -1 : 1) * 10 ** (-10 * random());
  return g;
}

function uniform(n: number, random: () => number, scale: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (2 * random() - 1) * scale;
  return x;
}

/** Distance between adjacent float32 values at |x| (the subnormal spacing near zero). */
function ulp32(x: number): number {
  const a = Math.abs(x);
  if (a < 2 ** -126) return 2 ** -149;
  return 2 ** (Math.floor(Math.log2(a)) - 23);
}

/** Bit-for-bit equality of two float32 arrays, reporting the first difference. */
function assertBitEqual(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: lengths`);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i]) assert.fail(`${what}[${i}]: ${actual[i]} !== ${expected[i]} (bits differ)`);
  }
}

const HYPER_DECAY = parseAdamWOptions({ adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8, weight_decay: 0.1 });
const HYPER_NO_DECAY = parseAdamWOptions({ weight_decay: 0 });

// --- float64 reference ---------------------------------------------------------------------------

type ElementKind = 'decay' | 'plain' | 'skip';

function elementKinds(n: number, start: number, ranges: readonly DecayRange[]): ElementKind[] {
  const kinds: ElementKind[] = new Array<ElementKind>(n).fill('skip');
  for (const r of ranges) for (let j = r.start; j < r.end; j++) kinds[j - start] = r.decay ? 'decay' : 'plain';
  return kinds;
}

interface Reference {
  p: Float64Array;
  m: Float64Array;
  v: Float64Array;
  /** First-order bounds on how far float32 storage can take the implementation from p, m, v. */
  pBound: Float64Array;
  mBound: Float64Array;
  vBound: Float64Array;
}

/**
 * torch.optim.AdamW's formulas (`_single_tensor_adam` with decoupled decay) in float64, element by
 * element, written independently of the implementation. Alongside, it propagates the error that
 * storing p, m, v as float32 adds each step (half an ulp per stored value) through the update:
 *   m error  em <- b1*em + ulp(m)/2,  v error  ev <- b2*ev + ulp(v)/2
 *   update error <= stepSize * (em/d + |m| * dd/d^2), with d = sqrt(v)/sqrt(bc2) + eps and
 *   dd <= ev / (2 sqrt(v) sqrt(bc2))
 *   p error  ep <- ep*(1 - lr*wd) + update error + ulp(p)/2
 */
function referenceAdamW(
  p0: Float32Array,
  gradsPerStep: readonly Float32Array[],
  lrs: readonly number[],
  kinds: readonly ElementKind[],
  hyper: AdamWHyperParams,
  gradScale = 1,
): Reference {
  const n = p0.length;
  const ref: Reference = {
    p: Float64Array.from(p0),
    m: new Float64Array(n),
    v: new Float64Array(n),
    pBound: new Float64Array(n),
    mBound: new Float64Array(n),
    vBound: new Float64Array(n),
  };
  const { beta1, beta2, eps, weightDecay } = hyper;
  gradsPerStep.forEach((grads, k) => {
    const t = k + 1;
    const lr = lrs[k]!;
    const bc1 = 1 - Math.pow(beta1, t);
    const bc2 = 1 - Math.pow(beta2, t);
    const stepSize = lr / bc1;
    for (let i = 0; i < n; i++) {
      const kind = kinds[i]!;
      if (kind === 'skip') continue;
      const g = grads[i]! * gradScale;
      const decay = kind === 'decay' ? 1 - lr * weightDecay : 1;
      let p = ref.p[i]! * decay;
      const m = beta1 * ref.m[i]! + (1 - beta1) * g;
      const v = beta2 * ref.v[i]! + (1 - beta2) * g * g;
      const denom = Math.sqrt(v) / Math.sqrt(bc2) + eps;
      p -= stepSize * (m / denom);
      const em = beta1 * ref.mBound[i]! + ulp32(m) / 2;
      const ev = beta2 * ref.vBound[i]! + ulp32(v) / 2;
      const dd = v === 0 ? 0 : ev / (2 * Math.sqrt(v) * Math.sqrt(bc2));
      const du = stepSize * (em / denom + (Math.abs(m) * dd) / (denom * denom));
      ref.pBound[i] = ref.pBound[i]! * Math.abs(decay) + du + ulp32(p) / 2;
      ref.mBound[i] = em;
      ref.vBound[i] = ev;
      ref.p[i] = p;
      ref.m[i] = m;
      ref.v[i] = v;
    }
  });
  return ref;
}

// Tolerance: twice the propagated first-order bound. The bound covers float32 storage; the factor 2
// covers second-order terms and float64 arithmetic (relative 1e-16, far below a float32 ulp). With
// 12 steps it is a handful of ulps of p, while a wrong formula (bias correction, eps placement,
// decay order or missing decay) is off by 1e-7..1e-3 here.
function assertNearReference(actual: Float32Array, expected: Float64Array, bound: Float64Array, what: string): void {
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!);
    if (!(err <= 2 * bound[i]!)) {
      assert.fail(`${what}[${i}]: ${actual[i]} vs reference ${expected[i]}: error ${err} > tolerance ${2 * bound[i]!}`);
    }
  }
}

/** Runs `steps` AdamW steps on a copy of p0 and checks p, m, v against the float64 reference. */
function checkAgainstReference(hyper: AdamWHyperParams, entries: readonly LayoutEntry[], length: number, seed: number): void {
  const random = rng(seed);
  const steps = 12;
  const p0 = uniform(length, random, 1);
  const gradsPerStep = Array.from({ length: steps }, () => gradients(length, random));
  const lrs = Array.from({ length: steps }, (_, k) => 1e-2 * (1 - k / steps)); // a linear decay, like the real schedule
  const ranges = decayRanges(entries, 0, length);
  const state = new AdamWState(0, length);
  const params = p0.slice();
  for (let k = 0; k < steps; k++) adamWStep(state, hyper, { params, grads: gradsPerStep[k]!, lr: lrs[k]!, ranges });
  assert.equal(state.step, steps);
  const ref = referenceAdamW(p0, gradsPerStep, lrs, elementKinds(length, 0, ranges), hyper);
  assertNearReference(params, ref.p, ref.pBound, 'p');
  assertNearReference(state.m, ref.m, ref.mBound, 'm');
  assertNearReference(state.v, ref.v, ref.vBound, 'v');
}

// A layout mixing decayed weights, norm weights and a bias, with padding gaps and a padded tail.
const MIXED_LAYOUT: readonly LayoutEntry[] = [
  { name: 'shared.weight', offset: 0, size: 700 },
  { name: 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', offset: 700, size: 64 },
  { name: 'encoder.block.0.layer.0.layer_norm.weight', offset: 764, size: 32 },
  { name: 'encoder.block.0.layer.1.DenseReluDense.wi_0.weight', offset: 800, size: 512 },
  { name: 'encoder.final_layer_norm.weight', offset: 1320, size: 32 }, // gap [1312, 1320)
  { name: 'lm_head.weight', offset: 1352, size: 600 },
];
const MIXED_LENGTH = 2000; // [1952, 2000) is padding

// --- tests ---------------------------------------------------------------------------------------

test('AdamW without weight decay matches the float64 reference over 12 steps', () => {
  checkAgainstReference(HYPER_NO_DECAY, [{ name: 'w', offset: 0, size: 4096 }], 4096, 1);
});

test('AdamW with weight decay on every element matches the float64 reference', () => {
  checkAgainstReference(HYPER_DECAY, [{ name: 'w', offset: 0, size: 4096 }], 4096, 2);
});

test('AdamW with mixed decay sub-ranges and padding matches the float64 reference', () => {
  const ranges = decayRanges(MIXED_LAYOUT, 0, MIXED_LENGTH);
  assert.ok(ranges.some((r) => r.decay) && ranges.some((r) => !r.decay), 'the layout must mix decayed and non-decayed ranges');
  checkAgainstReference(HYPER_DECAY, MIXED_LAYOUT, MIXED_LENGTH, 3);
});

test('the reference check can fail: a step with weight decay is far from the no-decay reference', () => {
  // Guards the test above against a tolerance so loose that it would accept a missing decay.
  const random = rng(4);
  const n = 1024;
  const p0 = uniform(n, random, 1);
  const g = gradients(n, random);
  const state = new AdamWState(0, n);
  const params = p0.slice();
  const ranges = decayRanges([{ name: 'w', offset: 0, size: n }], 0, n);
  adamWStep(state, HYPER_DECAY, { params, grads: g, lr: 1e-2, ranges });
  const ref = referenceAdamW(p0, [g], [1e-2], elementKinds(n, 0, ranges), HYPER_NO_DECAY);
  assert.throws(() => assertNearReference(params, ref.p, ref.pBound, 'p'), /error .* > tolerance/);
});

test('first step moves each parameter by lr * sign(g) when eps is negligible', () => {
  // Step 1: m = (1-b1) g, v = (1-b2) g^2, so m/(1-b1) = g and sqrt(v/(1-b2)) = |g|: the move is
  // lr * g / (|g| + eps). With |g| >= 1e-3 and eps = 1e-30 that is lr * sign(g) to 1e-27, so p1 is
  // p0 - lr*sign(g) rounded to float32 once; float64 evaluation (1e-16 relative) can at most move
  // that rounding by one ulp at an exact tie.
  const hyper = parseAdamWOptions({ adam_epsilon: 1e-30, weight_decay: 0 });
  const random = rng(5);
  const n = 2048;
  const p0 = uniform(n, random, 1);
  const g = uniform(n, random, 1).map((x) => (x < 0 ? -1 : 1) * (1e-3 + Math.abs(x)));
  const lr = 1e-3;
  const params = p0.slice();
  adamWStep(new AdamWState(0, n), hyper, { params, grads: g, lr, ranges: [{ start: 0, end: n, decay: true }] });
  for (let i = 0; i < n; i++) {
    const expected = p0[i]! - lr * Math.sign(g[i]!);
    assert.ok(Math.abs(params[i]! - expected) <= ulp32(expected), `p[${i}] = ${params[i]}, expected ${expected}`);
  }
});

test('a constant gradient moves every step by exactly lr * sign(g): bias correction cancels the zero start', () => {
  // With g constant, m_t = (1 - b1^t) g and v_t = (1 - b2^t) g^2, so the corrected moments are g and
  // g^2 at every t, and each step moves lr*sign(g) (eps negligible). A bias correction off by one
  // step would move 1e-3*lr or more. Tolerance: one ulp of p per step (each step rounds p once;
  // m and v carry float32 rounding, relative 1e-7, times lr = 1e-3: far below an ulp of p).
  const hyper = parseAdamWOptions({ adam_epsilon: 1e-30, weight_decay: 0 });
  const n = 64;
  const steps = 50;
  const lr = 1e-3;
  const p0 = Float32Array.from({ length: n }, (_, i) => (i % 7) - 3);
  const g = Float32Array.from({ length: n }, (_, i) => (i % 2 === 0 ? 1 : -1) * (0.01 + i));
  const params = p0.slice();
  const state = new AdamWState(0, n);
  for (let k = 0; k < steps; k++) adamWStep(state, hyper, { params, grads: g, lr, ranges: [{ start: 0, end: n, decay: false }] });
  for (let i = 0; i < n; i++) {
    const expected = p0[i]! - steps * lr * Math.sign(g[i]!);
    assert.ok(Math.abs(params[i]! - expected) <= steps * ulp32(Math.abs(p0[i]!) + 1), `p[${i}] = ${params[i]}, expected ${expected}`);
  }
});

test('zero gradients: decayed ranges shrink by prod(1 - lr_t * wd), others and the moments stay exactly zero-change', () => {
  const n = MIXED_LENGTH;
  const ranges = decayRanges(MIXED_LAYOUT, 0, n);
  const kinds = elementKinds(n, 0, ranges);
  const p0 = uniform(n, rng(6), 1);
  const params = p0.slice();
  const state = new AdamWState(0, n);
  const lrs = [1e-2, 5e-3, 2e-3];
  for (const lr of lrs) adamWStep(state, HYPER_DECAY, { params, grads: new Float32Array(n), lr, ranges });
  const shrink = lrs.reduce((acc, lr) => acc * (1 - lr * HYPER_DECAY.weightDecay), 1);
  for (let i = 0; i < n; i++) {
    assert.equal(state.m[i], 0);
    assert.equal(state.v[i], 0);
    if (kinds[i] === 'decay') {
      // Three roundings of p (one per step): at most 1.5 ulps from the exact product.
      assert.ok(Math.abs(params[i]! - p0[i]! * shrink) <= 1.5 * ulp32(p0[i]!), `p[${i}]`);
    } else {
      assert.equal(params[i], p0[i], `p[${i}] (${kinds[i]}) must not change`);
    }
  }
});

/** Runs `steps` steps over the ranks' ranges [rΨ/N, (r+1)Ψ/N) and returns the reassembled p, m, v. */
function runSharded(worldSize: number, p0: Float32Array, gradsPerStep: readonly Float32Array[], lrs: readonly number[], gradScale: number) {
  const total = p0.length;
  const params = p0.slice();
  const m = new Float32Array(total);
  const v = new Float32Array(total);
  for (let rank = 0; rank < worldSize; rank++) {
    const start = Math.floor((rank * total) / worldSize);
    const end = Math.floor(((rank + 1) * total) / worldSize);
    const ranges = decayRanges(MIXED_LAYOUT, start, end);
    const state = new AdamWState(start, end);
    gradsPerStep.forEach((grads, k) => {
      adamWStep(state, HYPER_DECAY, { params: params.subarray(start, end), grads: grads.subarray(start, end), lr: lrs[k]!, ranges, gradScale });
    });
    m.set(state.m, start);
    v.set(state.v, start);
  }
  return { params, m, v };
}

test('splitting the buffer into N contiguous ranges gives bit-identical results to one update, N = 1..5', () => {
  const random = rng(7);
  const steps = 5;
  const p0 = uniform(MIXED_LENGTH, random, 1);
  const gradsPerStep = Array.from({ length: steps }, () => gradients(MIXED_LENGTH, random));
  const lrs = [1e-3, 2e-3, 3e-3, 2e-3, 1e-3];
  const whole = runSharded(1, p0, gradsPerStep, lrs, 0.75);
  for (let worldSize = 1; worldSize <= 5; worldSize++) {
    const sharded = runSharded(worldSize, p0, gradsPerStep, lrs, 0.75);
    assertBitEqual(sharded.params, whole.params, `N=${worldSize} params`);
    assertBitEqual(sharded.m, whole.m, `N=${worldSize} m`);
    assertBitEqual(sharded.v, whole.v, `N=${worldSize} v`);
  }
  // And the test is not vacuous: the update changed every parameter covered by a range.
  const kinds = elementKinds(MIXED_LENGTH, 0, decayRanges(MIXED_LAYOUT, 0, MIXED_LENGTH));
  for (let i = 0; i < MIXED_LENGTH; i++) assert.equal(whole.params[i] !== p0[i], kinds[i] !== 'skip', `element ${i}`);
});

test('an arbitrary range of a bigger buffer updates exactly like those elements of the whole buffer', () => {
  const random = rng(8);
  const p0 = uniform(MIXED_LENGTH, random, 1);
  const grads = gradients(MIXED_LENGTH, random);
  const whole = p0.slice();
  const wholeState = new AdamWState(0, MIXED_LENGTH);
  adamWStep(wholeState, HYPER_DECAY, { params: whole, grads, lr: 1e-3, ranges: decayRanges(MIXED_LAYOUT, 0, MIXED_LENGTH) });
  for (const [start, end] of [[0, 1], [699, 701], [733, 1331], [1310, 1322], [1900, 2000], [1960, 2000]] as const) {
    const part = p0.slice(start, end);
    const state = new AdamWState(start, end);
    adamWStep(state, HYPER_DECAY, { params: part, grads: grads.subarray(start, end), lr: 1e-3, ranges: decayRanges(MIXED_LAYOUT, start, end) });
    assertBitEqual(part, whole.subarray(start, end), `[${start}, ${end}) params`);
    assertBitEqual(state.m, wholeState.m.subarray(start, end), `[${start}, ${end}) m`);
  }
});

test('resuming from saved moments and step continues exactly like an uninterrupted run', () => {
  const random = rng(9);
  const n = 512;
  const p0 = uniform(n, random, 1);
  const gradsPerStep = Array.from({ length: 6 }, () => gradients(n, random));
  const ranges = [{ start: 0, end: n, decay: true }];
  const straight = p0.slice();
  const straightState = new AdamWState(0, n);
  for (const grads of gradsPerStep) adamWStep(straightState, HYPER_DECAY, { params: straight, grads, lr: 1e-3, ranges });

  const resumed = p0.slice();
  let state = new AdamWState(0, n);
  gradsPerStep.forEach((grads, k) => {
    if (k === 3) state = new AdamWState(0, n, { m: state.m.slice(), v: state.v.slice(), step: state.step }); // "checkpoint"
    adamWStep(state, HYPER_DECAY, { params: resumed, grads, lr: 1e-3, ranges });
  });
  assert.equal(state.step, 6);
  assertBitEqual(resumed, straight, 'params');
  assertBitEqual(state.v, straightState.v, 'v');
});

test('gradScale c gives the steps of gradients scaled by c first', () => {
  // Scaling grads first rounds g*c to float32; gradScale keeps it in float64. That changes m and v
  // by a relative 2^-24 per step, so each move (at most a few lr) by a few lr * 2^-24; add one
  // rounding of p per step: tolerance steps * (ulp(p) + lr * 2^-22). (Tiny |p| make the lr term
  // matter.) The coefficient changes from step to step, as clipping's does: Adam ignores a constant
  // gradient scale (up to eps), so a constant one would not show a gradScale that is ignored.
  const random = rng(10);
  const n = 2048;
  const p0 = uniform(n, random, 1);
  const steps = [0.3, 1, 0.05].map((c) => ({ c, g: gradients(n, random) }));
  const ranges = [{ start: 0, end: n, decay: true }];
  const lr = 1e-2;
  const run = (useGradScale: boolean, ignoreScale = false): Float32Array => {
    const params = p0.slice();
    const state = new AdamWState(0, n);
    for (const { c, g } of steps) {
      if (useGradScale) adamWStep(state, HYPER_DECAY, { params, grads: g, lr, ranges, gradScale: ignoreScale ? 1 : c });
      else adamWStep(state, HYPER_DECAY, { params, grads: g.map((x) => x * c), lr, ranges });
    }
    return params;
  };
  const separate = run(false);
  const within = (p: Float32Array) => p.every((x, i) => Math.abs(x - separate[i]!) <= steps.length * (ulp32(separate[i]!) + lr * 2 ** -22));
  assert.ok(within(run(true)), 'gradScale result is within tolerance of scaling first');
  assert.ok(!within(run(true, true)), 'ignoring the scale must break the tolerance (the check can fail)');
});

test('a rank whose range holds only padding still counts the step', () => {
  const state = new AdamWState(1952, 2000);
  const params = new Float32Array(48);
  adamWStep(state, HYPER_DECAY, { params, grads: new Float32Array(48).fill(1), lr: 1e-3, ranges: decayRanges(MIXED_LAYOUT, 1952, 2000) });
  assert.equal(state.step, 1);
  assert.ok(params.every((x) => x === 0) && state.m.every((x) => x === 0));
});

test('hyper-parameters are validated with HF names and frozen', () => {
  const hyper = parseAdamWOptions({});
  assert.deepEqual(hyper, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
  assert.ok(Object.isFrozen(hyper));
  assert.throws(() => parseAdamWOptions({ adam_beta1: 1 }, 'run.yaml'), (e: unknown) => e instanceof InputFileError && /run\.yaml.*adam_beta1/.test(e.message));
  assert.throws(() => parseAdamWOptions({ adam_beta2: -0.1 }), /adam_beta2/);
  assert.throws(() => parseAdamWOptions({ adam_epsilon: -1 }), /adam_epsilon/);
  assert.throws(() => parseAdamWOptions({ weight_decay: '0.01' }), /weight_decay/);
  assert.throws(() => parseAdamWOptions({ weight_decay: Infinity }), /weight_decay/);
});

test('mismatched buffers, bad learning rates and stray ranges are refused before anything changes', () => {
  const state = new AdamWState(100, 200);
  const params = new Float32Array(100).fill(1);
  const grads = new Float32Array(100).fill(1);
  const ranges = [{ start: 100, end: 200, decay: true }];
  const bad: Array<[string, () => void, RegExp]> = [
    ['short params', () => adamWStep(state, HYPER_DECAY, { params: params.subarray(1), grads, lr: 1e-3, ranges }), /params has 99/],
    ['negative lr', () => adamWStep(state, HYPER_DECAY, { params, grads, lr: -1, ranges }), /learning rate -1/],
    ['NaN lr', () => adamWStep(state, HYPER_DECAY, { params, grads, lr: NaN, ranges }), /learning rate NaN/],
    ['NaN gradScale', () => adamWStep(state, HYPER_DECAY, { params, grads, lr: 1e-3, ranges, gradScale: NaN }), /gradScale/],
    ['range past end', () => adamWStep(state, HYPER_DECAY, { params, grads, lr: 1e-3, ranges: [{ start: 150, end: 201, decay: true }] }), /\[150, 201\)/],
    ['range before start', () => adamWStep(state, HYPER_DECAY, { params, grads, lr: 1e-3, ranges: [{ start: 99, end: 120, decay: true }] }), /\[99, 120\)/],
    [
      'overlapping ranges',
      () => adamWStep(state, HYPER_DECAY, { params, grads, lr: 1e-3, ranges: [{ start: 100, end: 150, decay: true }, { start: 140, end: 160, decay: false }] }),
      /\[140, 160\)/,
    ],
  ];
  for (const [what, run, message] of bad) assert.throws(run, (e: unknown) => e instanceof OptimizerError && message.test(e.message), what);
  assert.equal(state.step, 0);
  assert.ok(params.every((x) => x === 1) && state.m.every((x) => x === 0));
  assert.throws(() => new AdamWState(5, 4), OptimizerError);
  assert.throws(() => new AdamWState(0, 4, { m: new Float32Array(4), v: new Float32Array(3), step: 1 }), /v=3/);
  assert.throws(() => new AdamWState(0, 4, { m: new Float32Array(4), v: new Float32Array(4), step: 1.5 }), /step 1\.5/);
});
