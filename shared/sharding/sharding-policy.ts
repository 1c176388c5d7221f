// ZeRO stages as one small policy (FSDP2-style): which buffers a rank keeps whole and which it
// keeps only its FlatShard range of. The step applies the policy the same way at every stage.
//
//   stage 0  gradients all-reduced,   optimizer state and update on the whole buffer (replicated)
//   stage 1  gradients all-reduced,   optimizer state and update on the own range, params all-gathered
//   stage 2  gradients reduce-scattered (only the own range is reduced), as stage 1 otherwise
//
// [Note: stage 2 memory] The engine runs the whole model in one session, so every rank still
// materialises a full local gradient; stage 2 saves the reduced-gradient traffic and the optimizer
// memory, not the local gradient buffer. Real gradient partitioning needs block-wise backward
// (the stage 3 work), where each block's gradient is reduce-scattered as soon as it exists.

export type ZeroStage = 0 | 1 | 2;

export interface ShardingPolicy {
  readonly stage: ZeroStage;
  /** How summed gradients reach the optimizer. */
  readonly reduceGradients: 'allReduce' | 'reduceScatter';
  /** Which range a rank's optimizer owns and updates. */
  readonly optimizerRange: 'whole' | 'own';
  /** After the update, parameters are all-gathered from their owners. */
  readonly gatherParameters: boolean;
}

export const SHARDING_POLICIES: Readonly<Record<ZeroStage, ShardingPolicy>> = Object.freeze({
  0: Object.freeze({ stage: 0, reduceGradients: 'allReduce', optimizerRange: 'whole', gatherParameters: false }),
  1: Object.freeze({ stage: 1, reduceGradients: 'allReduce', optimizerRange: 'own', gatherParameters: true }),
  2: Object.freeze({ stage: 2, reduceGradients: 'reduceScatter', optimizerRange: 'own', gatherParameters: true }),
});
