// ZeRO stages as one small policy (FSDP2-style): which buffers a rank keeps whole and which it
// keeps only its FlatShard range of. The step applies the policy the same way at every stage.
//
//   stage 0  gradients all-reduced,   optimizer state and update on the whole buffer (replicated)
//   stage 1  gradients all-reduced,   optimizer state and update on the own range, params all-gathered
//   stage 2  gradients reduce-scattered (only the own range is reduced), as stage 1 otherwise
//   stage 3  parameters too: every rank keeps only its chunk of each parameter unit ([Note: unit
//            sharding]); a block's units are all-gathered when the engine reaches it and dropped
//            after; each unit's gradient is reduce-scattered into the rank's chunk; AdamW updates
//            the chunks. 16Ψ/N per rank in fp32 (params, gradients, two moments), plus live units.
//
// [Note: stage 2 memory] The engine runs the model block by block (worker/engine/t5-block-engine.ts)
// and hands out each block's parameter gradients as soon as its backward is done. At stages 0/1
// they are collected into a full local gradient (all-reduced after the last micro-batch); at
// stage 2 they go in buckets of reduce_bucket_size straight into a reduce-scatter whose own part is
// added into the rank's gradient shard (worker/gradient-reducer.ts), so a rank holds 4Ψ/N of
// gradient plus the buckets in flight, never a whole-model gradient: the ZeRO paper's 4Ψ + 12Ψ/N.

export type ZeroStage = 0 | 1 | 2 | 3;

export interface ShardingPolicy {
  readonly stage: ZeroStage;
  /** How summed gradients reach the optimizer. */
  readonly reduceGradients: 'allReduce' | 'reduceScatter';
  /** Which range a rank's optimizer owns and updates. */
  readonly optimizerRange: 'whole' | 'own';
  /** After the update, parameters are all-gathered from their owners. */
  readonly gatherParameters: boolean;
  /**
   * Parameters, gradients and moments live only as the rank's chunks of each unit (stage 3);
   * otherwise the ranges above are FlatShard ranges of the whole flat buffer.
   */
  readonly partitionParameters: boolean;
}

export const SHARDING_POLICIES: Readonly<Record<ZeroStage, ShardingPolicy>> = Object.freeze({
  0: Object.freeze({ stage: 0, reduceGradients: 'allReduce', optimizerRange: 'whole', gatherParameters: false, partitionParameters: false }),
  1: Object.freeze({ stage: 1, reduceGradients: 'allReduce', optimizerRange: 'own', gatherParameters: true, partitionParameters: false }),
  2: Object.freeze({ stage: 2, reduceGradients: 'reduceScatter', optimizerRange: 'own', gatherParameters: true, partitionParameters: false }),
  3: Object.freeze({ stage: 3, reduceGradients: 'reduceScatter', optimizerRange: 'own', gatherParameters: false, partitionParameters: true }),
});
