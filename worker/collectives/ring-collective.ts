import { CollectiveError } from '../../shared/errors.js';
import { flatShard, paddedFlatSize } from '../../shared/sharding/flat-shard.js';
import { Phase } from '../../proto/gen/dataplane/dataplane.js';
import type { Collective } from './collective.js';
import type { ChunkTransport, Combine } from './chunk-transport.js';

// Ring reduce-scatter and all-gather (Patarasuk & Yuan 2009; Horovod, NCCL, tinygrad's
// allreduce.py): the buffer is cut into N ranges, one per rank (the FlatShard ranges). In each of
// N-1 steps per phase every rank sends one range to rank+1 and receives one from rank-1, so each
// rank sends exactly (N-1)/N x buffer bytes per phase: the bandwidth-optimal bound.
//
// [Note: summation order] Reduce-scatter step s: rank r sends range (r-s-1) mod N and adds the
// range (r-s-2) mod N it receives into its own copy. Range c therefore starts at rank c+1, and each
// following rank adds its own values to what arrived, so rank c ends with
//     (((x[c+1] + x[c+2]) + x[c+3]) + ... + x[c-1]) + x[c]        (rank indices mod N)
// i.e. the ranks in ring order starting after the owner and ending with the owner, left to right,
// each partial sum rounded to float32. The order is fixed by (N, c) alone, never by timing, so
// every run gives the same bits. (JS adds in float64 and stores to float32; for one addition of
// two float32 values that double rounding equals IEEE float32 addition, since 53 >= 2*24 + 2.)
// A different N gives a different order, hence results equal only up to float rounding.
//
// reduceScatterRange runs the same steps on one piece [o, o+len) of the padded buffer: its chunk c
// is the piece's intersection with range c, so each element still travels from owner+1 round to
// its owner in the same order. Any partition of the buffer into pieces therefore gives the same
// bits as one reduceScatter, and the same bytes in total. A step whose chunk is empty is skipped
// by the sender and the receiver alike (both know the boundaries): no zero-length messages.

export interface RingCollectiveOptions {
  /** Each operation (one phase counts as one) fails with CollectiveError after this long. */
  readonly timeoutMs: number;
}

export const DEFAULT_RING_OPTIONS: RingCollectiveOptions = Object.freeze({ timeoutMs: 120_000 });

const mod = (a: number, n: number): number => ((a % n) + n) % n;

export class RingCollective implements Collective {
  readonly rank: number;
  readonly world: number;
  private readonly running = new Set<string>();
  private readonly closing = new AbortController();

  constructor(
    private readonly transport: ChunkTransport,
    private readonly options: RingCollectiveOptions = DEFAULT_RING_OPTIONS,
  ) {
    this.rank = transport.rank;
    this.world = transport.world;
  }

  get bytesSent(): number {
    return this.transport.bytesSent;
  }

  reduceScatter(buf: Float32Array, tag: string): Promise<void> {
    return this.run(buf, tag, Phase.REDUCE_SCATTER);
  }

  allGather(buf: Float32Array, tag: string): Promise<void> {
    return this.run(buf, tag, Phase.ALL_GATHER);
  }

  async allReduce(buf: Float32Array, tag: string): Promise<void> {
    await this.reduceScatter(buf, tag);
    await this.allGather(buf, tag);
  }

  async reduceScatterRange(buf: Float32Array, offset: number, paddedLength: number, tag: string): Promise<void> {
    const { world } = this;
    if (!Number.isSafeInteger(paddedLength) || paddedLength < 0 || paddedFlatSize(paddedLength, world) !== paddedLength) {
      throw new RangeError(`collective ${JSON.stringify(tag)}: paddedLength ${paddedLength} is not a padded flat size (a multiple of world ${world} x 16)`);
    }
    const end = offset + buf.length;
    if (!Number.isSafeInteger(offset) || offset < 0 || end > paddedLength) {
      throw new RangeError(`collective ${JSON.stringify(tag)}: piece [${offset}, ${end}) is not inside the padded buffer [0, ${paddedLength})`);
    }
    const shardSize = paddedLength / world;
    // Chunk c: the piece's part of range c, relative to buf; empty when they do not meet.
    const chunk = (c: number): Float32Array => {
      const lo = Math.max(offset, c * shardSize);
      const hi = Math.min(end, (c + 1) * shardSize);
      return buf.subarray(lo - offset, Math.max(lo, hi) - offset);
    };
    await this.ring(tag, Phase.REDUCE_SCATTER, `reduce-scatter of [${offset}, ${end})`, chunk);
  }

  async close(): Promise<void> {
    this.closing.abort(new CollectiveError(`rank ${this.rank}: collective closed`));
    await this.transport.close();
  }

  /** A whole-buffer phase: chunk c is range c. */
  private async run(buf: Float32Array, tag: string, phase: Phase.REDUCE_SCATTER | Phase.ALL_GATHER): Promise<void> {
    const { world } = this;
    const shard = flatShard(buf.length, world, this.rank);
    if (shard.paddedSize !== buf.length) {
      throw new RangeError(`collective ${JSON.stringify(tag)}: buffer length ${buf.length} is not a padded flat size (a multiple of world ${world} x 16)`);
    }
    const what = phase === Phase.REDUCE_SCATTER ? 'reduce-scatter' : 'all-gather';
    const range = (c: number): Float32Array => buf.subarray(c * shard.shardSize, (c + 1) * shard.shardSize);
    await this.ring(tag, phase, what, range);
  }

  /**
   * The ring, both phases: they differ only in which chunk goes first and how it is combined.
   * `chunk(c)` is what the operation moves of rank c's range (c in 0..N-1), the same on every rank.
   */
  private async ring(tag: string, phase: Phase.REDUCE_SCATTER | Phase.ALL_GATHER, what: string, chunk: (c: number) => Float32Array): Promise<void> {
    const { rank, world } = this;
    const guard = `${phase}/${tag}`;
    if (this.running.has(guard)) throw new CollectiveError(`rank ${rank}: collective ${JSON.stringify(tag)} is already running`);
    if (this.closing.signal.aborted) throw this.closing.signal.reason;
    if (world === 1) return;

    const next = (rank + 1) % world;
    const prev = (rank + world - 1) % world;
    // reduce-scatter: step s sends chunk r-s-1 (partly summed) and adds chunk r-s-2 into ours; after
    //   N-1 steps rank r holds the full sum of chunk r (see the note on summation order).
    // all-gather: step s sends chunk r-s (complete) and copies chunk r-s-1; after N-1 steps every
    //   chunk holds its owner's values.
    const first = phase === Phase.REDUCE_SCATTER ? 1 : 0;
    const combine: Combine = phase === Phase.REDUCE_SCATTER ? 'sum' : 'assign';

    this.running.add(guard);
    const abort = new AbortController();
    const timeout = abortAfter(this.options.timeoutMs);
    const signal = AbortSignal.any([abort.signal, this.closing.signal, timeout.signal]);
    let step = 0;
    try {
      for (; step < world - 1; step++) {
        const key = { tag, phase, step };
        const out = chunk(mod(rank - step - first, world));
        const into = chunk(mod(rank - step - first - 1, world));
        // Both halves of a step must finish before the next: the next step sends what this one
        // received, and the chunk sent now may be overwritten by a later step's receive. An empty
        // chunk is neither sent nor awaited: its peer computes the same emptiness.
        const parts: Promise<void>[] = [];
        if (out.length > 0) parts.push(this.transport.send(next, key, out, signal));
        if (into.length > 0) parts.push(this.transport.receive(prev, key, into, combine, signal));
        await allOrAbort(abort, parts);
      }
    } catch (e) {
      const reason: unknown = signal.aborted && !abort.signal.aborted ? signal.reason : e;
      const detail = isTimeout(reason) ? `timed out after ${this.options.timeoutMs} ms` : errorText(reason);
      throw new CollectiveError(`rank ${rank}/${world}: ${what} ${JSON.stringify(tag)} failed at step ${step}: ${detail}`, { cause: reason });
    } finally {
      timeout.clear();
      this.running.delete(guard);
    }
  }
}

/** Like Promise.all, but the first failure aborts the others so none is left pending. */
export async function allOrAbort(abort: AbortController, parts: Promise<void>[]): Promise<void> {
  try {
    await Promise.all(parts);
  } catch (e) {
    abort.abort(e);
    await Promise.allSettled(parts);
    throw e;
  }
}

/**
 * A signal that aborts with a TimeoutError after `ms`. Unlike AbortSignal.timeout its timer keeps
 * the process alive, so a wait on a peer that never comes still ends in an error, not in an exit.
 */
export function abortAfter(ms: number): { signal: AbortSignal; clear: () => void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')), ms);
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}

function isTimeout(e: unknown): boolean {
  return e instanceof Error && e.name === 'TimeoutError';
}

export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
