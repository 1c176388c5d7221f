import { KpCoordError } from '../shared/errors.js';

// Keeping the global batch when the number of workers changes (ZeRO's "universal checkpoint"
// idea, and what DeepSpeed elasticity requires): the samples per optimizer step stay
// per_device_train_batch_size x gradient_accumulation_steps x world, so every step sees the same
// samples (the sampler cuts each global batch the same way for any split) and the result does
// not change beyond float summation order.

export interface BatchShape {
  readonly world: number;
  readonly perDevice: number;
  readonly gradAccum: number;
}

/**
 * The largest world <= `available` that divides `globalBatch`, with the largest per-device batch
 * <= `maxPerDevice` that divides the per-worker share (memory per step never grows), the rest
 * made up by gradient accumulation.
 */
export function batchShapeFor(available: number, globalBatch: number, maxPerDevice: number): BatchShape {
  if (!(available >= 1 && globalBatch >= 1 && maxPerDevice >= 1)) throw new KpCoordError(`batch shape: ${available} workers, global batch ${globalBatch}, per-device ${maxPerDevice}`);
  for (let world = Math.min(available, globalBatch); world >= 1; world--) {
    if (globalBatch % world !== 0) continue;
    const share = globalBatch / world;
    for (let perDevice = Math.min(maxPerDevice, share); perDevice >= 1; perDevice--) {
      if (share % perDevice === 0) return { world, perDevice, gradAccum: share / perDevice };
    }
  }
  // world 1, per-device 1 always divides: unreachable.
  throw new KpCoordError(`no batch shape for global batch ${globalBatch}`);
}
