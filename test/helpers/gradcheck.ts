import assert from 'node:assert/strict';
import test from 'node:test';
import { gradients } from '../../shared/autodiff/backward.js';
import type { AnyTypedArray } from '../../shared/onnx/dtype.js';
import { Graph, type Value } from '../../shared/onnx/graph.js';
import { formatShape } from '../../shared/onnx/shape.js';
import { rngStream, type RngStream } from '../../shared/random.js';
import { runSessionTensors, sessionFor } from './ort.js';

// Gradient check against central finite differences, in float64, through onnxruntime itself.
//
// A case declares float64 inputs with static shapes and returns an output y of any shape. The
// harness adds a seed input W of y's shape (random), builds the analytic gradients of
// L = sum(y * W) with `gradients([{ value: y, seed: W }], wrt)`, and compares each coordinate
// with (L(x + h e_j) - L(x - h e_j)) / 2h, L summed in JS from the y that the same session returns.
// A random W (not ones) makes every element of y matter with a different weight, so a rule that
// permutes or mis-broadcasts its gradient cannot pass by symmetry; it is also exactly the
// upstream-gradient ("seed") path that block-wise execution uses.
//
// [Note: step and tolerance]
// The central difference's error is truncation h^2/6 |L'''| plus rounding ~ eps |L| / h
// (eps = 2.2e-16). With inputs and W of order 1 and tensors of a few dozen elements, |L| and
// |L'''| are of order 10, so h = 1e-5 gives ~1e-10 truncation + ~1e-10 rounding: the reference
// is good to about 1e-9 of a gradient of order 1. (h = 1e-3 would give 1e-6 truncation;
// h = 1e-8 would give 1e-7 rounding.) The step actually taken, (x + h) - (x - h), is
// computed in float64 and used as the divisor, so representing x +- h costs nothing.
// A coordinate passes when |analytic - fd| <= rtol * scale + floor, where
//  - scale is the largest |fd| entry of that tensor: errors are judged against the tensor's
//    magnitude, not each entry's own (an entry that is nearly 0 by cancellation has a
//    meaningless relative error); rtol = 1e-6 is ~1000x the reference's own error, so a correct
//    rule never fails by chance, while a wrong rule (sign, missing factor, wrong axis) is off by
//    O(1) of the scale and fails by six orders of magnitude;
//  - floor = 100 eps sum|y_i W_i| / h is what rounding alone can explain (each y_i went
//    through up to a few dozen float64 ops): it matters only for tensors whose gradient is
//    (nearly) zero, e.g. a wrt value that does not reach y, where both sides are then exactly 0.

/** How to draw one element of a differentiated input. */
export type Draw = (rng: RngStream) => number;

export const draws = {
  /** N(0, 1), the default. */
  normal: ((rng) => rng.normal()) as Draw,
  /** Uniform in [0.5, 2): inside the domain of Log, Sqrt, Pow's base, and away from Div's and Reciprocal's pole. */
  positive: ((rng) => 0.5 + 1.5 * rng.uniform()) as Draw,
  /** |x| uniform in [0.25, 1.5), either sign: Relu's kink stays 0.25 >> h away, so x +- h sit on one branch. */
  awayFromZero: ((rng) => (rng.uniform() < 0.5 ? -1 : 1) * (0.25 + 1.25 * rng.uniform())) as Draw,
} as const;

export interface DiffInput {
  readonly value: Value;
  /** Element generator; `draws.normal` when absent. */
  readonly draw?: Draw;
}

/** An input that is fed but not differentiated (indices, masks, a shape template). */
export interface FixedInput {
  readonly value: Value;
  readonly data: AnyTypedArray;
}

export interface GradCheckCase {
  readonly y: Value;
  /** The inputs to differentiate: float64, static shapes. */
  readonly wrt: readonly (Value | DiffInput)[];
  readonly fixed?: readonly FixedInput[];
}

export interface GradCheckOptions {
  readonly seed?: number;
  /** Finite-difference step; see the note above. */
  readonly h?: number;
  readonly rtol?: number;
  /** Tensors with more coordinates than this are checked on a seeded sample of that many. */
  readonly maxCoordinates?: number;
}

export interface GradCheckReport {
  readonly coordinates: number;
  /** Largest |analytic - fd| / scale over all checked tensors (0 for all-zero tensors). */
  readonly worstRelativeError: number;
  readonly sessionRuns: number;
}

const EPS = 2 ** -52;
const DEFAULTS = { seed: 20261128, h: 1e-5, rtol: 1e-6, maxCoordinates: 1000 } as const;
const SEED_NAME = 'grad_seed';

/** Build the case in a fresh graph and compare its analytic gradients with finite differences. */
export async function checkGradients(
  name: string,
  build: (g: Graph) => GradCheckCase,
  options: GradCheckOptions = {},
): Promise<GradCheckReport> {
  const opts = { ...DEFAULTS, ...options };
  const g = new Graph(`gradcheck_${name.replace(/\W+/g, '_')}`);
  const c = build(g);
  const wrt = c.wrt.map((w): DiffInput => ('value' in w ? w : { value: w }));
  const fixed = c.fixed ?? [];

  const staticShape = (v: Value): number[] =>
    v.shape.map((d) => {
      if (typeof d !== 'number') assert.fail(`${name}: ${v} has a symbolic dim; gradient checks need static shapes`);
      return d;
    });
  if (c.y.dtype !== 'float64') assert.fail(`${name}: y must be float64, got ${c.y}`);
  for (const { value } of wrt) {
    if (value.dtype !== 'float64' || !g.inputs.includes(value)) assert.fail(`${name}: ${value} must be a float64 graph input`);
  }
  const fed = new Set<Value>([...wrt.map((w) => w.value), ...fixed.map((f) => f.value)]);
  const unfed = g.inputs.filter((v) => !fed.has(v));
  if (unfed.length > 0) assert.fail(`${name}: no data for input(s) ${unfed.join(', ')}`);

  const seed = g.input(SEED_NAME, 'float64', c.y.shape);
  const grads = gradients([{ value: c.y, seed }], wrt.map((w) => w.value));
  g.output('y', c.y);
  grads.forEach((gr, i) => {
    const x = wrt[i]!.value;
    if (gr.dtype !== x.dtype || formatShape(gr.shape) !== formatShape(x.shape)) assert.fail(`${name}: gradient of ${x} is built as ${gr}`);
    g.output(`grad_${i}`, gr);
  });

  // Seeded data: one Philox stream per input, keyed by its position among the graph's inputs.
  const feeds: Record<string, AnyTypedArray> = {};
  wrt.forEach(({ value, draw = draws.normal }) => {
    const rng = rngStream(opts.seed, g.inputs.indexOf(value));
    feeds[value.name] = Float64Array.from({ length: elementCount(staticShape(value)) }, () => draw(rng));
  });
  for (const f of fixed) feeds[f.value.name] = f.data;
  const w = new Float64Array(elementCount(staticShape(seed)));
  rngStream(opts.seed, g.inputs.indexOf(seed)).fillNormal(w);
  feeds[SEED_NAME] = w;

  const session = await sessionFor(g);
  let runs = 0;
  const lossAt = async (): Promise<{ loss: number; magnitude: number }> => {
    runs++;
    const y = (await runSessionTensors(session, g, feeds, { fetches: ['y'] })).y!.data as Float64Array;
    const terms = Array.from(y, (yi, i) => yi * w[i]!);
    return { loss: neumaierSum(terms), magnitude: neumaierSum(terms.map(Math.abs)) };
  };

  try {
    runs++;
    const out = await runSessionTensors(session, g, feeds);
    const { magnitude } = await lossAt();
    const floor = (100 * EPS * magnitude) / opts.h;
    const problems: string[] = [];
    let coordinates = 0;
    let worst = 0;

    for (const [i, { value }] of wrt.entries()) {
      const grad = out[`grad_${i}`]!;
      const shape = staticShape(value);
      if (!(grad.data instanceof Float64Array)) assert.fail(`${name}: gradient of ${value} is not float64`);
      if (grad.dims.length !== shape.length || grad.dims.some((d, k) => d !== shape[k])) {
        assert.fail(`${name}: gradient of ${value} has run-time shape ${formatShape(grad.dims)}`);
      }
      const x = feeds[value.name] as Float64Array;
      const picks = pickCoordinates(x.length, opts.maxCoordinates, rngStream(opts.seed, 1_000_000 + i));
      const fd = new Float64Array(picks.length);
      for (const [k, j] of picks.entries()) {
        const x0 = x[j]!;
        x[j] = x0 + opts.h;
        const up = x[j]!;
        const lossUp = (await lossAt()).loss;
        x[j] = x0 - opts.h;
        const down = x[j]!;
        const lossDown = (await lossAt()).loss;
        x[j] = x0;
        fd[k] = (lossUp - lossDown) / (up - down);
        if (!Number.isFinite(fd[k])) assert.fail(`${name}: finite difference for ${value.name}${index(j, shape)} is ${fd[k]}; draw inputs inside the op's domain`);
      }
      const scale = fd.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const tolerance = opts.rtol * scale + floor;
      for (const [k, j] of picks.entries()) {
        const analytic = grad.data[j]!;
        const error = Math.abs(analytic - fd[k]!);
        if (scale > 0) worst = Math.max(worst, error / scale);
        // Written so that NaN fails.
        if (!(error <= tolerance)) {
          problems.push(`d/d${value.name}${index(j, shape)}: analytic ${analytic}, finite difference ${fd[k]} (|error| ${error.toExponential(2)} > ${tolerance.toExponential(2)})`);
        }
      }
      coordinates += picks.length;
    }
    if (problems.length > 0) {
      assert.fail(`${name}: ${problems.length} of ${coordinates} gradient coordinates differ from finite differences:\n  ${problems.slice(0, 8).join('\n  ')}`);
    }
    return { coordinates, worstRelativeError: worst, sessionRuns: runs };
  } finally {
    await session.release();
  }
}

/** Register a node:test that runs one gradient check and reports its accuracy. */
export function gradTest(name: string, build: (g: Graph) => GradCheckCase, options: GradCheckOptions = {}): void {
  test(name, async (t) => {
    const r = await checkGradients(name, build, options);
    t.diagnostic(`${r.coordinates} coordinates, worst |error| / scale ${r.worstRelativeError.toExponential(2)}, ${r.sessionRuns} runs`);
  });
}

/** A case for a one-input op on a tensor of `shape`. */
export function unaryCase(op: (x: Value) => Value, shape: readonly number[] = [2, 3], draw?: Draw) {
  return (g: Graph): GradCheckCase => {
    const x = g.input('x', 'float64', shape);
    return { y: op(x), wrt: [{ value: x, ...(draw ? { draw } : {}) }] };
  };
}

/** A case for a two-input op, both differentiated (so both gradients, and their unbroadcast, are checked). */
export function binaryCase(
  op: (a: Value, b: Value) => Value,
  shapeA: readonly number[],
  shapeB: readonly number[],
  draw: { a?: Draw; b?: Draw } = {},
) {
  return (g: Graph): GradCheckCase => {
    const a = g.input('a', 'float64', shapeA);
    const b = g.input('b', 'float64', shapeB);
    return { y: op(a, b), wrt: [{ value: a, ...(draw.a ? { draw: draw.a } : {}) }, { value: b, ...(draw.b ? { draw: draw.b } : {}) }] };
  };
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

/** Every coordinate when there are at most `max`; else a seeded sample that keeps the first and last. */
function pickCoordinates(count: number, max: number, rng: RngStream): number[] {
  if (count <= max) return Array.from({ length: count }, (_, j) => j);
  const picked = new Set<number>([0, count - 1]);
  while (picked.size < max) picked.add(Math.floor(rng.uniform() * count));
  return [...picked].sort((p, q) => p - q);
}

/** Flat index j as [i0, i1, ...] in row-major `shape`. */
function index(j: number, shape: readonly number[]): string {
  const idx: number[] = [];
  for (let k = shape.length - 1; k >= 0; k--) {
    idx.unshift(j % shape[k]!);
    j = Math.floor(j / shape[k]!);
  }
  return `[${idx.join(', ')}]`;
}

/** Neumaier-compensated sum: L's own rounding stays near one ulp whatever the number of terms. */
function neumaierSum(xs: readonly number[]): number {
  let sum = 0;
  let comp = 0;
  for (const x of xs) {
    const t = sum + x;
    comp += Math.abs(sum) >= Math.abs(x) ? sum - t + x : x - t + sum;
    sum = t;
  }
  return sum + comp;
}
