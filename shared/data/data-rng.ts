import { rngStream, type RngStream } from '../random.js';

// Key-space tags for the data pipeline's random streams (shared/random.ts `rngStream(seed, ...keys)`).
// They sit far from RngDomain's small numbers (init 1, dropout 2) so no model stream shares a key tuple.
export const DataRng = Object.freeze({
  /** Train/eval split by ratio: rngStream(split_seed, split). */
  split: 1001,
  /** Epoch permutation: rngStream(seed, epochOrder, epoch). */
  epochOrder: 1002,
  /** Order of length-bucketed batches in a window: rngStream(seed, bucketOrder, epoch, window). */
  bucketOrder: 1003,
  /** Synthetic data set: rngStream(seed, synth, ...). */
  synth: 1004,
});

/** Uniform integer in [0, n): floor of a 53-bit uniform (bias below 2^-53 * n, nil for data sizes). */
export function randomBelow(rng: RngStream, n: number): number {
  return Math.floor(rng.uniform() * n);
}

/** In-place Fisher-Yates shuffle driven by `rng`. */
export function shuffleInPlace<T>(items: T[] | Int32Array | Uint32Array, rng: RngStream): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomBelow(rng, i + 1);
    const t = items[i]!;
    items[i] = items[j]!;
    items[j] = t;
  }
}
