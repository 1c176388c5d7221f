import type { DataSplit } from '../shared/data/data-cache.js';
import type { ModelBatch } from '../shared/models/model-family.js';
import { assembleBatch } from '../shared/data/assemble-batch.js';
import type { DistributedSampler } from '../shared/data/sampler.js';
import { adamWStep, AdamWState, type AdamWHyperParams } from '../shared/optim/adamw.js';
import { sharedFloat32, type AdamWThreads } from '../shared/optim/adamw-threads.js';
import { clipCoefficient, sumOfSquares } from '../shared/optim/clip.js';
import { decayRanges } from '../shared/optim/decay-ranges.js';
import type { LrSchedule } from '../shared/optim/schedules.js';
import type { FlatShard } from '../shared/sharding/flat-shard.js';
import type { ShardingPolicy } from '../shared/sharding/sharding-policy.js';
import type { FlatLayout } from '../shared/weights/flat-layout.js';
import type { ParamHolder, Params, TrainingEngine } from './engine/training-engine.js';
import { GradientReducer, overlapMs } from './gradient-reducer.js';
import type { UnitGatherer } from './param-gatherer.js';
import type { DecayRange } from '../shared/optim/decay-ranges.js';
import { DEEPSPEED_BUCKET_DEFAULT } from '../shared/config/zero-config.js';

// One rank's part of a ZeRO training step (stage 2 order, see DESIGN "Step"):
//   forward+backward of this rank's micro-batches, each block's gradients handed to the reducer
//   (gradient-reducer.ts: stage 2 reduce-scatters them as they come, stages 0/1 collect and
//   all-reduce after the last micro-batch)  ->  all-reduce token count and loss sum
//   (coordinator)  ->  global grad norm from each rank's own range (coordinator)  ->  clip  ->  AdamW on the
//   policy's range  ->  all-gather parameters (when the optimizer is sharded)  ->  report.
// Gradients stay sums over tokens until the optimizer scales them by 1 / (global token count),
// so N workers give the update of one big batch.
//
// Stage 3 is the same step on unit chunks: each micro-batch's pass gathers the blocks' units as
// the engine reaches them (param-gatherer.ts), gradients are reduce-scattered unit by unit into the
// rank's chunks, AdamW updates the chunks, and the persistent (small) units are gathered again.

/** The collectives a step needs (worker/collectives implements them over gRPC or in process). */
export interface StepCollective {
  reduceScatter(buf: Float32Array, tag: string): Promise<void>;
  reduceScatterRange(buf: Float32Array, offset: number, paddedLength: number, tag: string): Promise<void>;
  allGather(buf: Float32Array, tag: string): Promise<void>;
  allReduce(buf: Float32Array, tag: string): Promise<void>;
  readonly bytesSent: number;
}

/** Sum of `values` over ranks, the same on every rank (the coordinator's scalar all-reduce). */
export type ScalarAllReduce = (key: string, values: number[]) => Promise<number[]>;

export interface ZeroTrainerOptions {
  readonly engine: TrainingEngine;
  /** Elements per stage-2 gradient bucket (DeepSpeed reduce_bucket_size). */
  readonly reduceBucketSize?: number;
  readonly layout: FlatLayout;
  readonly shard: FlatShard;
  readonly policy: ShardingPolicy;
  /** Stages 0-2: padded flat parameters (length shard.paddedSize), identical on every rank. */
  readonly params?: Float32Array;
  /** Stage 3: the rank's parameter chunks and how to gather them (policy.partitionParameters). */
  readonly gatherer?: UnitGatherer;
  readonly adamw: AdamWHyperParams;
  readonly schedule: LrSchedule;
  readonly maxGradNorm: number;
  readonly seed: number;
  readonly sampler: DistributedSampler;
  readonly train: DataSplit;
  readonly padId: number;
  /** The micro-batch of samples `indices` (default: a seq2seq batch padded with padId); causal caches assemble CausalLmBatch. */
  readonly assemble?: (split: DataSplit, indices: ArrayLike<number>) => ModelBatch;
  readonly collective: StepCollective;
  readonly scalars: ScalarAllReduce;
  /** Split AdamW over threads (stage 3: the shard buffers are shared memory). Default: one, inline. */
  readonly optimizerThreads?: AdamWThreads;
  /** Adam moments and step count for `optimizerRange(shard, policy)` (stage 3: the shard buffer), e.g. from a checkpoint. */
  readonly optimizerState?: { readonly m: Float32Array; readonly v: Float32Array; readonly step: number };
}

/** The range of the flat buffer a rank's optimizer owns under `policy`. */
export function optimizerRange(shard: FlatShard, policy: ShardingPolicy): { start: number; end: number } {
  return policy.optimizerRange === 'own' ? { start: shard.start, end: shard.end } : { start: 0, end: shard.paddedSize };
}

export interface ZeroStepResult {
  readonly step: number;
  /** This rank's loss sum and tokens, and the global ones. */
  readonly lossSum: number;
  readonly tokens: number;
  readonly globalLoss: number;
  readonly globalTokens: number;
  readonly gradNorm: number;
  readonly lr: number;
  readonly samples: number;
  readonly bytesSent: number;
  /** Forward+backward time, reduce-scatter time, and the part of it inside forward+backward (overlap_comm). */
  readonly computeMs: number;
  readonly commMs: number;
  readonly hiddenCommMs: number;
}

export class ZeroTrainer {
  readonly reducer: GradientReducer;
  readonly optimizer: AdamWState;
  /** Stages 0-2: the flat parameters; an engine in a worker thread borrows the array during a step. Null at stage 3. */
  readonly params: ParamHolder | null;
  /** Stage 3: the rank's parameter chunks and their gatherer. Null below stage 3. */
  readonly gatherer: UnitGatherer | null;
  /** The optimizer's range: of the flat buffer, or at stage 3 the whole shard buffer. */
  private readonly range: { start: number; end: number };
  private readonly decay: readonly DecayRange[];

  constructor(private readonly o: ZeroTrainerOptions) {
    const { shard, policy } = o;
    if (o.engine.paramCount !== o.layout.totalSize) throw new RangeError(`engine has ${o.engine.paramCount} parameters, the layout ${o.layout.totalSize}`);
    if (policy.partitionParameters) {
      if (!o.gatherer || o.params) throw new RangeError('stage 3 takes the parameter chunks (gatherer), not a whole buffer');
      if (!o.engine.traces) throw new RangeError('stage 3 needs an engine that runs block by block');
      this.params = null;
      this.gatherer = o.gatherer;
      this.range = { start: 0, end: o.gatherer.sharding.shardSize };
      // Each chunk's decay sub-ranges, moved from flat to shard-buffer offsets (padding: no range).
      this.decay = o.gatherer.sharding.pieces.flatMap((p) => decayRanges(o.layout.params, p.lo, p.hi).map((r) => ({ ...r, start: r.start - p.lo + p.at, end: r.end - p.lo + p.at })));
    } else {
      if (!o.params || o.gatherer) throw new RangeError(`stage ${policy.stage} takes the whole parameter buffer`);
      if (o.params.length !== shard.paddedSize) throw new RangeError(`params: ${o.params.length} elements, the plan pads to ${shard.paddedSize}`);
      this.params = { array: o.params };
      this.gatherer = null;
      this.range = optimizerRange(shard, policy);
      this.decay = decayRanges(o.layout.params, this.range.start, this.range.end);
    }
    this.reducer = new GradientReducer(policy, shard, o.engine.units, o.reduceBucketSize ?? DEEPSPEED_BUCKET_DEFAULT, o.collective, this.gatherer?.sharding ?? null);
    // Stage 3's moments are shared memory, so AdamW threads can update them in place.
    const n = this.range.end - this.range.start;
    const state = o.optimizerState ?? (this.gatherer ? { m: sharedFloat32(n), v: sharedFloat32(n), step: 0 } : undefined);
    this.optimizer = new AdamWState(this.range.start, this.range.end, state);
  }

  /** Where a training pass reads parameters: the whole buffer, or (stage 3) a gather pass. */
  trainParams(tag: string): Params {
    return this.gatherer ? this.gatherer.pass(this.o.engine.traces!.train, tag) : this.params!;
  }

  /** The same for an evaluation forward. */
  evalParams(tag: string): Params {
    return this.gatherer ? this.gatherer.pass(this.o.engine.traces!.eval, tag) : this.params!;
  }

  async step(epoch: number, stepInEpoch: number, step: number): Promise<ZeroStepResult> {
    const o = this.o;
    const tag = `step-${step}`;
    const sent0 = o.collective.bytesSent;
    const reducer = this.reducer;
    reducer.beginStep();

    // forward + backward of this rank's micro-batches; at stage 2 each gradient bucket is
    // reduce-scattered into the shard while (overlap_comm) or right after the backward makes it
    const microBatches = o.sampler.microBatches(epoch, stepInEpoch, o.shard.rank);
    let lossSum = 0;
    let tokens = 0;
    let samples = 0;
    let computeMs = 0;
    let hiddenCommMs = 0;
    for (const [k, indices] of microBatches.entries()) {
      const mbTag = `${tag}/grads/${k}`;
      if (indices.length === 0) {
        // Stage 3: the peers gather units for this micro-batch; take part without computing.
        await Promise.all([reducer.emptyMicroBatch(mbTag), this.gatherer?.skipPass(o.engine.traces!.train, `${tag}/params/${k}`)]);
        continue;
      }
      const batch = o.assemble ? o.assemble(o.train, indices) : assembleBatch(o.train, indices, o.padId);
      const spans0 = reducer.spans.length;
      const r = await o.engine.forwardBackward(this.trainParams(`${tag}/params/${k}`), batch, { seed: o.seed, step, sampleIndices: Array.from(indices) }, reducer.sink(mbTag));
      await reducer.endMicroBatch();
      computeMs += r.computeEnd - r.computeStart;
      hiddenCommMs += overlapMs(reducer.spans.slice(spans0), r.computeStart, r.computeEnd);
      lossSum += r.lossSum;
      tokens += r.tokenCount;
      samples += indices.length;
    }
    const commMs = reducer.spans.reduce((s, x) => s + x.end - x.start, 0);
    await reducer.finishStep(`${tag}/grads`);

    const [globalLossSum, globalTokens] = await o.scalars(`${tag}/tokens`, [lossSum, tokens]);
    if (!globalTokens) throw new RangeError(`step ${step}: no label tokens in the global batch`);

    // global norm of the token-mean gradient, from each rank's own (reduced) range
    const own = reducer.ownGradient();
    const scale = 1 / globalTokens;
    const [ownSquares] = await o.scalars(`${tag}/grad-norm`, [sumOfSquares(own)]);
    const sumSq = ownSquares! * scale * scale;
    const coefficient = o.maxGradNorm > 0 ? clipCoefficient(sumSq, o.maxGradNorm) : 1;
    const lr = o.schedule.lrAt(step);

    const { start, end } = this.range;
    const params = this.gatherer ? this.gatherer.shard : this.params!.array;
    const args = { params: params.subarray(start, end), grads: reducer.gradient(start, end), lr, ranges: this.decay, gradScale: scale * coefficient };
    if (o.optimizerThreads) await o.optimizerThreads.step(this.optimizer, o.adamw, args);
    else adamWStep(this.optimizer, o.adamw, args);
    if (o.policy.gatherParameters) await o.collective.allGather(params, `${tag}/params`);
    await this.gatherer?.refreshPersistent(`${tag}/persistent`);

    return {
      step, lossSum, tokens, samples, lr,
      globalLoss: globalLossSum! / globalTokens,
      globalTokens,
      gradNorm: Math.sqrt(sumSq),
      bytesSent: o.collective.bytesSent - sent0,
      computeMs, commMs, hiddenCommMs,
    };
  }
}
