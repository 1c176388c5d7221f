import { rngStream } from '../random.js';
import { DataRng, shuffleInPlace } from './data-rng.js';

// The deterministic distributed sampler. Every worker derives its micro-batches from
// (seed, epoch, step, rank, world) alone, so no index list ever crosses the wire.
//
// [Note: epoch order] The epoch's order is a permutation of 0..size-1 drawn from
// rngStream(seed, epochOrder, epoch). Global batches are G = per_device_batch * grad_accum * world
// samples; step s covers order[s*G, (s+1)*G). With drop_last false (HF's default) the last step
// holds the size mod G remaining samples; with drop_last true they are skipped this epoch. The
// order depends on (seed, epoch, size, G) only — never on world by itself — so the same global
// batch gives the same steps on 1 worker or on 8.
//
// [Note: rank share] Rank r takes a contiguous, balanced share of each global batch: with m samples
// and W ranks, ranks below m mod W take floor(m/W) + 1, the rest floor(m/W). A full batch thus gives
// each rank exactly per_device_batch * grad_accum. The share is cut into ceil(share/per_device_batch)
// micro-batches of balanced sizes (at most grad_accum of them; none when the share is empty — a rank
// with nothing in a short last batch still joins the step's collectives with zero tokens).
// The loss is a sum over tokens divided by the global token count (see DESIGN), so uneven shares
// change nothing mathematically.
//
// [Note: length bucketing] Optional, like HF's group_by_length: the order is cut into windows of
// window_batches * G samples; inside a window samples are sorted by length (ties by position) and
// cut into global batches, whose order is then shuffled with rngStream(seed, bucketOrder, epoch,
// window). A short last batch stays last. Each epoch still holds every sample exactly once; only
// which samples share a batch changes, so padding shrinks.

export interface BucketingOptions {
  /** Global batches per sorting window (HF uses 50 batches' worth: its "megabatch"). */
  readonly windowBatches: number;
  /** Length of every sample (e.g. input tokens), indexed like the split. */
  readonly lengths: ArrayLike<number>;
}

export interface SamplerOptions {
  /** Samples in the split. */
  readonly size: number;
  readonly seed: number;
  readonly perDeviceBatch: number;
  readonly gradAccum: number;
  readonly world: number;
  /** Skip a short last batch (default false, as HF's dataloader_drop_last). */
  readonly dropLast?: boolean;
  /** Permute each epoch (default true); false keeps the split's order (eval). */
  readonly shuffle?: boolean;
  readonly bucketing?: BucketingOptions;
}

function positiveInt(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`sampler: ${name} must be a positive integer, got ${v}`);
}

/** Start and length of part `part` when `total` items are cut into `parts` balanced contiguous parts. */
export function balancedPart(total: number, parts: number, part: number): { start: number; length: number } {
  const base = Math.floor(total / parts);
  const extra = total % parts;
  return { start: part * base + Math.min(part, extra), length: base + (part < extra ? 1 : 0) };
}

export class DistributedSampler {
  readonly size: number;
  readonly seed: number;
  readonly perDeviceBatch: number;
  readonly gradAccum: number;
  readonly world: number;
  readonly dropLast: boolean;
  readonly shuffle: boolean;
  /** G: samples in one global batch (one optimizer step). */
  readonly globalBatchSize: number;
  readonly stepsPerEpoch: number;
  private readonly bucketing: BucketingOptions | undefined;
  private cached: { epoch: number; order: Int32Array } | undefined;

  constructor(o: SamplerOptions) {
    if (!Number.isSafeInteger(o.size) || o.size < 0) throw new RangeError(`sampler: size must be a non-negative integer, got ${o.size}`);
    if (!Number.isSafeInteger(o.seed) || o.seed < 0) throw new RangeError(`sampler: seed must be a non-negative integer, got ${o.seed}`);
    positiveInt('per_device_batch', o.perDeviceBatch);
    positiveInt('grad_accum', o.gradAccum);
    positiveInt('world', o.world);
    if (o.bucketing) {
      positiveInt('bucketing window_batches', o.bucketing.windowBatches);
      if (o.bucketing.lengths.length !== o.size) throw new RangeError(`sampler: bucketing has ${o.bucketing.lengths.length} lengths for ${o.size} samples`);
    }
    this.size = o.size;
    this.seed = o.seed;
    this.perDeviceBatch = o.perDeviceBatch;
    this.gradAccum = o.gradAccum;
    this.world = o.world;
    this.dropLast = o.dropLast ?? false;
    this.shuffle = o.shuffle ?? true;
    this.bucketing = o.bucketing;
    this.globalBatchSize = o.perDeviceBatch * o.gradAccum * o.world;
    this.stepsPerEpoch = this.dropLast ? Math.floor(o.size / this.globalBatchSize) : Math.ceil(o.size / this.globalBatchSize);
  }

  /** The epoch's sample order (see [Note: epoch order]); samples past stepsPerEpoch * G are the dropped tail. */
  epochOrder(epoch: number): Int32Array {
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError(`sampler: epoch must be a non-negative integer, got ${epoch}`);
    if (this.cached?.epoch === epoch) return this.cached.order;
    const order = new Int32Array(this.size);
    for (let i = 0; i < this.size; i++) order[i] = i;
    if (this.shuffle) shuffleInPlace(order, rngStream(this.seed, DataRng.epochOrder, epoch));
    if (this.bucketing) {
      // Bucket only what the epoch uses, so drop_last drops the permutation's tail, not a length-biased set.
      const used = this.dropLast ? this.stepsPerEpoch * this.globalBatchSize : this.size;
      this.bucket(order.subarray(0, used), epoch, this.bucketing);
    }
    this.cached = { epoch, order };
    return order;
  }

  /** Sample indices of global batch `step` of `epoch` (a view). */
  globalBatch(epoch: number, step: number): Int32Array {
    this.checkStep(step);
    const G = this.globalBatchSize;
    return this.epochOrder(epoch).subarray(step * G, Math.min((step + 1) * G, this.size));
  }

  /** Rank `rank`'s share of global batch `step` (see [Note: rank share]). */
  rankShare(epoch: number, step: number, rank: number): Int32Array {
    this.checkRank(rank);
    const batch = this.globalBatch(epoch, step);
    const { start, length } = balancedPart(batch.length, this.world, rank);
    return batch.subarray(start, start + length);
  }

  /** Every micro-batch rank `rank` runs in epoch `epoch`, step by step (a pass over its share, e.g. of an eval split). */
  epochMicroBatches(epoch: number, rank: number): Int32Array[] {
    const out: Int32Array[] = [];
    for (let step = 0; step < this.stepsPerEpoch; step++) out.push(...this.microBatches(epoch, step, rank));
    return out;
  }

  /** The micro-batches rank `rank` runs in step `step`: at most grad_accum, each at most per_device_batch. */
  microBatches(epoch: number, step: number, rank: number): Int32Array[] {
    const share = this.rankShare(epoch, step, rank);
    // Every rank runs as many micro-batches as the largest share needs (some may be short or
    // empty): ZeRO-2/3 reduce (and at stage 3 gather) once per micro-batch on every rank, so the
    // counts must match or the ring waits for a rank that has stopped.
    const largest = Math.ceil(this.globalBatch(epoch, step).length / this.world);
    const count = Math.ceil(largest / this.perDeviceBatch);
    const out: Int32Array[] = [];
    for (let k = 0; k < count; k++) {
      const { start, length } = balancedPart(share.length, count, k);
      out.push(share.subarray(start, start + length));
    }
    return out;
  }

  private checkStep(step: number): void {
    if (!Number.isSafeInteger(step) || step < 0 || step >= this.stepsPerEpoch) {
      throw new RangeError(`sampler: step ${step} is outside 0..${this.stepsPerEpoch - 1} (${this.size} samples, global batch ${this.globalBatchSize})`);
    }
  }

  private checkRank(rank: number): void {
    if (!Number.isSafeInteger(rank) || rank < 0 || rank >= this.world) throw new RangeError(`sampler: rank ${rank} is outside 0..${this.world - 1}`);
  }

  /** Length bucketing in place over `order` (see [Note: length bucketing]). */
  private bucket(order: Int32Array, epoch: number, b: BucketingOptions): void {
    const G = this.globalBatchSize;
    const windowSize = b.windowBatches * G;
    const lengths = b.lengths;
    for (let w = 0, start = 0; start < order.length; w++, start += windowSize) {
      const win = order.subarray(start, Math.min(start + windowSize, order.length));
      // Sort by length, ties by position in the permutation (stable and deterministic).
      const pos = Array.from(win.keys());
      pos.sort((x, y) => lengths[win[x]!]! - lengths[win[y]!]! || x - y);
      const sorted = Int32Array.from(pos, (p) => win[p]!);
      const fullBatches = Math.floor(sorted.length / G);
      const batchOrder = Array.from({ length: fullBatches }, (_, k) => k);
      shuffleInPlace(batchOrder, rngStream(this.seed, DataRng.bucketOrder, epoch, w));
      for (let k = 0; k < fullBatches; k++) win.set(sorted.subarray(batchOrder[k]! * G, (batchOrder[k]! + 1) * G), k * G);
      win.set(sorted.subarray(fullBatches * G), fullBatches * G);
    }
  }
}

/** Padding in a set of micro-batches, each padded to its longest row. */
export interface PaddingStats {
  readonly realTokens: number;
  readonly paddedTokens: number;
  /** Share of the padded tensor that is padding: 1 - real/padded. */
  readonly paddingShare: number;
}

/** Padding over one epoch of `sampler`'s micro-batches on every rank, with `lengths` per sample. */
export function epochPadding(sampler: DistributedSampler, epoch: number, lengths: ArrayLike<number>): PaddingStats {
  let real = 0;
  let padded = 0;
  for (let step = 0; step < sampler.stepsPerEpoch; step++) {
    for (let rank = 0; rank < sampler.world; rank++) {
      for (const mb of sampler.microBatches(epoch, step, rank)) {
        let max = 0;
        for (const i of mb) {
          const n = lengths[i]!;
          real += n;
          if (n > max) max = n;
        }
        padded += max * mb.length;
      }
    }
  }
  return { realTokens: real, paddedTokens: padded, paddingShare: padded === 0 ? 0 : 1 - real / padded };
}
