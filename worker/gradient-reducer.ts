import type { FlatShard } from '../shared/sharding/flat-shard.js';
import type { ShardingPolicy } from '../shared/sharding/sharding-policy.js';
import type { UnitSharding } from '../shared/sharding/unit-shard.js';
import { sharedFloat32 } from '../shared/optim/adamw-threads.js';
import type { GradientSink } from './engine/block-engine.js';
import { now } from './engine/training-engine.js';

// Where the gradient units of a rank's micro-batches go (see [Note: stage 2 memory]).
//
//   stages 0/1  into one full local gradient (the first micro-batch's copied, later ones added),
//               all-reduced after the last micro-batch by the step;
//   stage 2     into buckets of about `reduce_bucket_size` elements (DeepSpeed's name), each
//               reduce-scattered over the ring as soon as its last unit arrives, and its own part
//               added into the rank's gradient shard. No rank holds a whole-model gradient:
//               only the shard (Ψ/N) and the buckets in flight.
//   stage 3     each unit alone (its own partition, [Note: unit sharding]): padded to P_u,
//               reduce-scattered, the rank's chunk added into its shard-layout gradient.
//
// Units come end to start of the flat buffer, so a bucket is a contiguous piece and complete when
// its lowest unit arrives. Every rank cuts the same buckets from the same units (the plan depends
// only on the model, N and the bucket size), so the collectives match up.

export interface Bucket {
  readonly lo: number;
  readonly hi: number;
}

/**
 * Group consecutive units (end to start) into buckets: a unit joins the open bucket unless that
 * would pass `bucketSize` (a larger unit is a bucket alone), as DeepSpeed's ipg bucket flushes.
 * The first bucket also covers the padding tail up to `paddedSize` (zeros on every rank).
 */
export function planBuckets(units: readonly Bucket[], paddedSize: number, bucketSize: number): Bucket[] {
  const out: Bucket[] = [];
  let open: { lo: number; hi: number } | null = null;
  units.forEach((u, k) => {
    const hi = k === 0 ? paddedSize : u.hi;
    if (open && open.hi - u.lo > bucketSize) {
      out.push(open);
      open = null;
    }
    open = open ? { lo: u.lo, hi: open.hi } : { lo: u.lo, hi };
  });
  if (open) out.push(open);
  return out;
}

export interface ReduceCollective {
  reduceScatter(buf: Float32Array, tag: string): Promise<void>;
  reduceScatterRange(buf: Float32Array, offset: number, paddedLength: number, tag: string): Promise<void>;
  allReduce(buf: Float32Array, tag: string): Promise<void>;
}

export interface CommSpan {
  readonly start: number;
  readonly end: number;
}

export class GradientReducer {
  /** Stages 0/1: the full padded gradient. Stage 2: this rank's shard (shard.shardSize elements). Stage 3: the unit chunks. */
  private readonly grad: Float32Array;
  private readonly buckets: Bucket[];
  private firstMicroBatch = true;
  private chain: Promise<void> = Promise.resolve();
  /** Reduce-scatter spans of the current step (for the overlap measurement). */
  spans: CommSpan[] = [];

  constructor(
    private readonly policy: ShardingPolicy,
    private readonly shard: FlatShard,
    private readonly units: readonly Bucket[],
    bucketSize: number,
    private readonly collective: ReduceCollective,
    /** Stage 3's partition of the units (required when policy.partitionParameters). */
    private readonly sharding: UnitSharding | null = null,
  ) {
    if (policy.partitionParameters && !sharding) throw new RangeError('stage 3 reduces into unit chunks: pass the unit sharding');
    // Stage 3's gradient chunks are shared memory, for AdamW threads (optimizer_threads).
    this.grad = sharding ? sharedFloat32(sharding.shardSize) : new Float32Array(policy.reduceGradients === 'reduceScatter' ? shard.shardSize : shard.paddedSize);
    this.buckets = planBuckets(units, shard.paddedSize, bucketSize);
  }

  get bucketCount(): number {
    return this.buckets.length;
  }

  beginStep(): void {
    this.firstMicroBatch = true;
    this.spans = [];
    if (this.policy.reduceGradients === 'reduceScatter') this.grad.fill(0);
  }

  /** The sink for one micro-batch; `endMicroBatch` waits for what it started. */
  sink(tag: string): GradientSink {
    let next = 0;
    let open: { bucket: Bucket; buf: Float32Array } | null = null;
    let b = 0;
    return (lo, hi, grad) => {
      const unit = this.units[next++];
      if (!unit || unit.lo !== lo || unit.hi !== hi) throw new RangeError(`gradient unit [${lo}, ${hi}) arrived, expected ${unit ? `[${unit.lo}, ${unit.hi})` : 'none'}`);
      if (!(grad instanceof Float32Array)) throw new TypeError('ZeRO reduces float32 gradients');
      if (this.policy.reduceGradients === 'allReduce') {
        this.collect(lo, grad);
        return;
      }
      if (this.sharding) {
        const u = next - 1;
        this.chain = this.chain.then(() => this.reduceUnit(u, grad, `${tag}/${lo}`));
        return this.chain;
      }
      const bucket = this.buckets[b]!;
      // A unit that is a whole bucket is reduced in place; otherwise it is copied into the bucket.
      if (!open && lo === bucket.lo && hi === bucket.hi) open = { bucket, buf: grad };
      else {
        open ??= { bucket, buf: new Float32Array(bucket.hi - bucket.lo) };
        open.buf.set(grad, lo - bucket.lo);
      }
      if (lo !== bucket.lo) return;
      const done = open;
      open = null;
      b++;
      this.chain = this.chain.then(() => this.reduce(done.bucket, done.buf, `${tag}/${done.bucket.lo}`));
      return this.chain;
    };
  }

  /**
   * A micro-batch without samples (a rank's share of the epoch's short last batch): at stage 2 it
   * contributes zeros, taking part in every reduce-scatter; at stages 0/1 nothing happens until
   * the step's all-reduce.
   */
  async emptyMicroBatch(tag: string): Promise<void> {
    if (this.policy.reduceGradients === 'allReduce') return;
    const sink = this.sink(tag);
    for (const u of this.units) void sink(u.lo, u.hi, new Float32Array(u.hi - u.lo));
    await this.endMicroBatch();
  }

  async endMicroBatch(): Promise<void> {
    await this.chain;
    this.firstMicroBatch = false;
  }

  /**
   * After the step's micro-batches. Stages 0/1: all-reduce the local gradient (zeros if no
   * micro-batch ran; the padding tail is always zero). Stage 2: the shard is complete already.
   */
  async finishStep(tag: string): Promise<void> {
    if (this.policy.reduceGradients === 'reduceScatter') return;
    if (this.firstMicroBatch) this.grad.fill(0);
    await this.collective.allReduce(this.grad, tag);
  }

  /** This rank's own reduced gradient (its FlatShard range; stage 3: all its unit chunks), for the global norm. */
  ownGradient(): Float32Array {
    if (this.policy.reduceGradients === 'allReduce') return this.grad.subarray(this.shard.start, this.shard.end);
    return this.grad;
  }

  /** The reduced gradient of the flat range [start, end): any range at stages 0/1, within the own shard at stage 2; stage 3: the shard buffer's [start, end). */
  gradient(start: number, end: number): Float32Array {
    if (this.policy.reduceGradients === 'allReduce' || this.sharding) return this.grad.subarray(start, end);
    const { shard } = this;
    if (start < shard.start || end > shard.end) throw new RangeError(`gradient [${start}, ${end}): stage 2 keeps only this rank's shard [${shard.start}, ${shard.end})`);
    return this.grad.subarray(start - shard.start, end - shard.start);
  }

  private collect(lo: number, grad: Float32Array): void {
    if (this.firstMicroBatch) this.grad.set(grad, lo);
    else {
      const g = this.grad;
      for (let i = 0; i < grad.length; i++) g[lo + i]! += grad[i]!;
    }
  }

  private async reduce(bucket: Bucket, buf: Float32Array, tag: string): Promise<void> {
    const start = now();
    await this.collective.reduceScatterRange(buf, bucket.lo, this.shard.paddedSize, tag);
    this.spans.push({ start, end: now() });
    const from = Math.max(bucket.lo, this.shard.start);
    const to = Math.min(bucket.hi, this.shard.end);
    const g = this.grad;
    for (let i = from; i < to; i++) g[i - this.shard.start]! += buf[i - bucket.lo]!;
  }

  /** Stage 3: reduce-scatter unit u's gradient (padded to P_u) and add the rank's chunk into its place. */
  private async reduceUnit(u: number, grad: Float32Array, tag: string): Promise<void> {
    const sharding = this.sharding!;
    const padded = sharding.paddedSize(u);
    const buf = grad.length === padded ? grad : new Float32Array(padded);
    if (buf !== grad) buf.set(grad);
    const start = now();
    await this.collective.reduceScatter(buf, tag);
    this.spans.push({ start, end: now() });
    const piece = sharding.piece(u);
    const own = buf.subarray(sharding.rank * piece.chunk, (sharding.rank + 1) * piece.chunk);
    const g = this.grad;
    for (let i = 0; i < own.length; i++) g[piece.at + i]! += own[i]!;
  }
}

/** Milliseconds of `spans` that fall inside [start, end] (communication hidden behind compute). */
export function overlapMs(spans: readonly CommSpan[], start: number, end: number): number {
  return spans.reduce((s, x) => s + Math.max(0, Math.min(x.end, end) - Math.max(x.start, start)), 0);
}
