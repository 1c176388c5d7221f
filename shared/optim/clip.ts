import { z } from 'zod';
import { NonFiniteGradientError, OptimizerError } from '../errors.js';

// Global-norm gradient clipping as torch.nn.utils.clip_grad_norm_ (and DeepSpeed's gradient_clipping)
// does it, split so that ZeRO ranks can combine partial results:
//   1. each rank: s_r = sumOfSquares(its gradient range)
//   2. all-reduce: S = sum over ranks of s_r (float64 on the wire)
//   3. every rank: c = clipCoefficient(S, max_grad_norm); scaleInPlace(its range, c), or pass c to
//      adamWStep as gradScale, which saves one pass over the gradients.
// torch: total_norm = ||g||_2, coefficient = max_norm / (total_norm + 1e-6), applied only if < 1.

/** torch's clip_grad_norm_ adds this to the norm before dividing (avoids 0/0 on zero gradients). */
export const CLIP_NORM_EPS = 1e-6;

/** HF TrainingArguments' name and default; 0 disables clipping, as in HF Trainer. */
export const ClipOptionsSchema = z.object({
  max_grad_norm: z.number().min(0).default(1.0),
});

/**
 * Sum of squares of a gradient range, accumulated in float64. Why float64: a float32 sum over
 * 10^8 elements loses everything (naive summation error grows like n * 2^-24, and once the sum is
 * 2^24 times a square, adding that square changes nothing); float64's 2^-53 keeps the relative
 * error below ~1e-8 even then. Also each square of a float32 is exact in float64 (48 significant
 * bits) and cannot overflow (float32 max squared ~1.2e77), so a huge gradient gives a finite
 * norm and clipping works, where a float32 sum would give Infinity.
 */
export function sumOfSquares(values: Float32Array): number {
  // One accumulator, in index order: deterministic. (Split accumulators measured no faster in V8.)
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    sum += x * x;
  }
  return sum;
}

/**
 * The factor to multiply all gradients by: min(1, maxNorm / (sqrt(totalSumOfSquares) + 1e-6)).
 * `totalSumOfSquares` is the sum over all ranks. maxNorm 0 disables clipping (returns 1), as HF
 * Trainer skips clipping when max_grad_norm is 0. A NaN or infinite total throws
 * NonFiniteGradientError even then: applying such a step would make parameters NaN.
 */
export function clipCoefficient(totalSumOfSquares: number, maxNorm: number): number {
  if (Number.isNaN(totalSumOfSquares) || totalSumOfSquares === Infinity) {
    throw new NonFiniteGradientError(`gradient sum of squares is ${totalSumOfSquares}: the step must not be applied`);
  }
  if (!(totalSumOfSquares >= 0)) throw new OptimizerError(`clipCoefficient: sum of squares ${totalSumOfSquares} is negative`);
  if (!(Number.isFinite(maxNorm) && maxNorm >= 0)) throw new OptimizerError(`clipCoefficient: max norm ${maxNorm} must be finite and >= 0`);
  if (maxNorm === 0) return 1;
  const coefficient = maxNorm / (Math.sqrt(totalSumOfSquares) + CLIP_NORM_EPS);
  return coefficient < 1 ? coefficient : 1;
}

/** values *= coefficient, in place; a coefficient of exactly 1 leaves the values untouched. */
export function scaleInPlace(values: Float32Array, coefficient: number): void {
  if (!Number.isFinite(coefficient)) throw new OptimizerError(`scaleInPlace: coefficient ${coefficient} is not finite`);
  if (coefficient === 1) return;
  for (let i = 0; i < values.length; i++) values[i] *= coefficient;
}
