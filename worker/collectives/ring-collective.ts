import { CollectiveError } from '../../shared/errors.js';
import { flatShard } from '../../shared/sharding/flat-shard.js';
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

  async close(): Promise<void> {
    this.closing.abort(new CollectiveError(`rank ${this.rank}: collective closed`));
    await this.transport.close();
  }

  /** The ring, both phases: they differ only in which range goes first and how it is combined. */
  private async run(buf: Float32Array, tag: string, phase: Phase.REDUCE_SCATTER | Phase.ALL_GATHER): Promise<void> {
    const { rank, world } = this;
    const shard = flatShard(buf.length, world, rank);
    if (shard.paddedSize !== buf.length) {
      throw new RangeError(`collective ${JSON.stringify(tag)}: buffer length ${buf.length} is not a padded flat size (a multiple of world ${world} x 16)`);
    }
    const guard = `${phase}/${tag}`;
    if (this.running.has(guard)) throw new CollectiveError(`rank ${rank}: collective ${JSON.stringify(tag)} is already running`);
    if (this.closing.signal.aborted) throw this.closing.signal.reason;
    if (world === 1) return;

    const range = (i: number): Float32Array => {
      const start = mod(i, world) * shard.shardSize;
      return buf.subarray(start, start + shard.shardSize);
    };
    const next = (rank + 1) % world;
    const prev = (rank + world - 1) % world;
    // reduce-scatter: step s sends range r-s-1 (partly summed) and adds range r-s-2 into ours; after
    //   N-1 steps rank r holds the full sum of range r (see the note on summation order).
    // all-gather: step s sends range r-s (complete) and copies range r-s-1; after N-1 steps every
    //   range holds its owner's values.
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
        // Both halves of a step must finish before the next: the next step sends what this one
        // received, and the range sent now may be overwritten by a later step's receive.
        await allOrAbort(abort, [
          this.transport.send(next, key, range(rank - step - first), signal),
          this.transport.receive(prev, key, range(rank - step - first - 1), combine, signal),
        ]);
      }
    } catch (e) {
      const what = phase === Phase.REDUCE_SCATTER ? 'reduce-scatter' : 'all-gather';
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
