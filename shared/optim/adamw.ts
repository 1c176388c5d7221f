import { z } from 'zod';
import { OptimizerError } from '../errors.js';
import { assertRangesWithin, type DecayRange } from './decay-ranges.js';
import { parseInput } from '../zod-issues.js';

// AdamW as torch.optim.AdamW computes it (HF Trainer's default optimizer), on one contiguous range
// [start, end) of the flat parameter buffer. Per element, with t the step count after incrementing:
//
//   p <- p * (1 - lr*wd)                       decoupled decay, before the Adam update (decayed ranges only)
//   m <- b1*m + (1-b1)*g                       torch writes m.lerp_(g, 1-b1): the same value
//   v <- b2*v + (1-b2)*g*g
//   p <- p - (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
//
// [Note: sharding] An element's update reads only its own p, g, m, v and scalars every rank shares
// (lr, t, the hyper-parameters, its decay flag). So splitting the buffer into any ranges, updated
// by different workers, gives bit-identical results to one update over the whole buffer.
//
// [Note: precision] p, m and v are stored as float32, like torch's fp32 master weights and moments.
// Between loads and stores the arithmetic is float64 (what JS does anyway), so each stored value is
// rounded once per step, where torch rounds after every op: the result is at least as accurate and
// agrees with torch to a few float32 ulps, not bit for bit.

/** AdamW hyper-parameters as HF TrainingArguments names them; defaults are HF's. */
export const AdamWOptionsSchema = z.object({
  adam_beta1: z.number().min(0).lt(1).default(0.9),
  adam_beta2: z.number().min(0).lt(1).default(0.999),
  adam_epsilon: z.number().min(0).default(1e-8),
  weight_decay: z.number().min(0).default(0),
});

export type AdamWOptionsInput = z.input<typeof AdamWOptionsSchema>;

/** Validated AdamW hyper-parameters (the learning rate comes from the schedule, per step). Frozen. */
export interface AdamWHyperParams {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
}

/** Validate AdamW options (HF names; other keys are ignored); `source` names the file in errors. */
export function parseAdamWOptions(input: unknown, source = 'AdamW options'): AdamWHyperParams {
  const o = parseInput(AdamWOptionsSchema, input, source, 'AdamW options');
  return Object.freeze({ beta1: o.adam_beta1, beta2: o.adam_beta2, eps: o.adam_epsilon, weightDecay: o.weight_decay });
}

/** Adam moments for the owned range [start, end) of the flat buffer, and the number of steps taken. */
export class AdamWState {
  readonly m: Float32Array;
  readonly v: Float32Array;
  /** Optimizer steps taken so far; the same on every rank. Only `adamWStep` advances it. */
  step: number;

  /** Fresh zero moments, or `saved` ones (taken over, not copied), e.g. from a checkpoint. */
  constructor(
    readonly start: number,
    readonly end: number,
    saved?: { readonly m: Float32Array; readonly v: Float32Array; readonly step: number },
  ) {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
      throw new OptimizerError(`AdamWState: need integers 0 <= start <= end, got [${start}, ${end})`);
    }
    const n = end - start;
    if (saved === undefined) {
      this.m = new Float32Array(n);
      this.v = new Float32Array(n);
      this.step = 0;
      return;
    }
    if (saved.m.length !== n || saved.v.length !== n) {
      throw new OptimizerError(`AdamWState [${start}, ${end}): saved moments have lengths m=${saved.m.length}, v=${saved.v.length}, need ${n}`);
    }
    if (!Number.isSafeInteger(saved.step) || saved.step < 0) {
      throw new OptimizerError(`AdamWState [${start}, ${end}): saved step ${saved.step} is not a non-negative integer`);
    }
    this.m = saved.m;
    this.v = saved.v;
    this.step = saved.step;
  }
}

export interface AdamWStepArgs {
  /** Parameters of the owned range, updated in place; index 0 is flat offset `state.start`. */
  readonly params: Float32Array;
  /** Gradients of the owned range (same indexing), read only. */
  readonly grads: Float32Array;
  /** Learning rate of this step (from the schedule at step `state.step`). */
  readonly lr: number;
  /** Sub-ranges to update with their decay flag (see `decayRanges`); other elements stay untouched. */
  readonly ranges: readonly DecayRange[];
  /** Multiplies every gradient as it is read: pass the clip coefficient to save a pass over grads. */
  readonly gradScale?: number;
}

/** One AdamW step on the owned range: updates params, state.m, state.v in place, then state.step. */
export function adamWStep(state: AdamWState, hyper: AdamWHyperParams, args: AdamWStepArgs): void {
  const scalars = adamWStepScalars(state, hyper, args);
  updateRanges(args.params, args.grads, state.m, state.v, state.start, args.ranges, hyper, scalars);
  state.step = scalars.t;
}

/** What every element of one step shares ([Note: sharding]): derived once, used by every range and thread. */
export interface AdamWStepScalars {
  /** torch's t: the step count after this step (state.step + 1). */
  readonly t: number;
  readonly stepSize: number;
  readonly biasCorrection2Sqrt: number;
  /** 1 - lr * weightDecay, applied to the decayed ranges only. */
  readonly decayFactor: number;
  readonly gradScale: number;
}

/** Checks one step's inputs against the state (changing nothing) and derives the step's scalars. */
export function adamWStepScalars(state: AdamWState, hyper: AdamWHyperParams, args: AdamWStepArgs): AdamWStepScalars {
  const { params, grads, lr, ranges } = args;
  const gradScale = args.gradScale ?? 1;
  const { start, end } = state;
  const n = end - start;
  if (params.length !== n || grads.length !== n) {
    throw new OptimizerError(`adamWStep [${start}, ${end}): params has ${params.length} and grads ${grads.length} elements, need ${n}`);
  }
  if (!(Number.isFinite(lr) && lr >= 0)) throw new OptimizerError(`adamWStep: learning rate ${lr} must be finite and >= 0`);
  if (!(Number.isFinite(gradScale) && gradScale >= 0)) throw new OptimizerError(`adamWStep: gradScale ${gradScale} must be finite and >= 0`);
  assertRangesWithin(ranges, start, end, `adamWStep [${start}, ${end})`);

  // Scalars exactly as torch derives them (Python floats are float64, like JS numbers).
  const t = state.step + 1;
  return {
    t,
    stepSize: lr / (1 - hyper.beta1 ** t),
    biasCorrection2Sqrt: Math.sqrt(1 - hyper.beta2 ** t),
    decayFactor: 1 - lr * hyper.weightDecay,
    gradScale,
  };
}

/**
 * Updates the elements of `ranges` (flat offsets; index 0 of p, g, m, v is flat offset `offset`)
 * with one step's scalars. Validation is the caller's (`adamWStepScalars`); state.step is not touched.
 */
export function updateRanges(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  offset: number,
  ranges: readonly DecayRange[],
  hyper: AdamWHyperParams,
  s: AdamWStepScalars,
): void {
  const { beta1, beta2, eps } = hyper;
  for (const r of ranges) {
    updateRange(p, g, m, v, r.start - offset, r.end - offset, beta1, beta2, r.decay ? s.decayFactor : 1, s.stepSize, s.biasCorrection2Sqrt, eps, s.gradScale);
  }
}

// The hot loop: one pass, four loads and three stores per element, no allocation, every scalar a
// parameter (hoisted). Multiplying by decayFactor = 1 or gradScale = 1 is exact, so ranges without
// decay and steps without clipping share this one loop (one monomorphic function for V8).
function updateRange(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  lo: number,
  hi: number,
  beta1: number,
  beta2: number,
  decayFactor: number,
  stepSize: number,
  biasCorrection2Sqrt: number,
  eps: number,
  gradScale: number,
): void {
  const oneMinusBeta1 = 1 - beta1;
  const oneMinusBeta2 = 1 - beta2;
  for (let i = lo; i < hi; i++) {
    const gi = g[i] * gradScale;
    const mi = beta1 * m[i] + oneMinusBeta1 * gi;
    const vi = beta2 * v[i] + oneMinusBeta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decayFactor - stepSize * (mi / (Math.sqrt(vi) / biasCorrection2Sqrt + eps));
  }
}
