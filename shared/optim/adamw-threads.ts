import { Worker } from 'node:worker_threads';
import { OptimizerError } from '../errors.js';
import { adamWStep, adamWStepScalars, type AdamWHyperParams, type AdamWState, type AdamWStepArgs, type AdamWStepScalars } from './adamw.js';
import type { DecayRange } from './decay-ranges.js';

// AdamW over worker threads, so a large shard's optimizer step is not bound to one core. Each
// thread runs adamw.ts's `updateRanges` on a disjoint piece of the decay ranges, in place, with the
// step's scalars derived once here: by [Note: sharding] the result is bit-identical to `adamWStep`
// on one thread, whatever the split. In-place updates from several threads need memory they all
// see, hence SharedArrayBuffer views (`sharedFloat32`); with one thread the step runs inline.

/** A Float32Array of n zeros over a new SharedArrayBuffer: shard buffers that AdamWThreads can update. */
export function sharedFloat32(n: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(n * Float32Array.BYTES_PER_ELEMENT));
}

/** What the main thread posts to a piece thread per step (adamw-thread-entry.ts). */
export interface PieceJob {
  readonly p: Float32Array;
  readonly g: Float32Array;
  readonly m: Float32Array;
  readonly v: Float32Array;
  /** Flat offset of index 0 of p, g, m, v (state.start). */
  readonly offset: number;
  readonly ranges: readonly DecayRange[];
  readonly hyper: AdamWHyperParams;
  readonly scalars: AdamWStepScalars;
}

/** A piece thread's answer: done, or the message of what it threw. */
export type PieceReply = { readonly ok: true } | { readonly ok: false; readonly message: string };

/** Elements per cut alignment: 16 float32 = one 64-byte cache line, so no two threads write one line. */
const CUT_ALIGN = 16;

export class AdamWThreads {
  // One value for the lifecycle: 'stepping' refuses a second concurrent step, 'closed' any step.
  private state: 'idle' | 'stepping' | 'closed' = 'idle';

  private constructor(
    readonly threads: number,
    private readonly pieces: readonly PieceThread[],
  ) {}

  /** An integer `threads` >= 1. With more than one, starts that many worker threads, reused by every step. */
  static async create(threads: number): Promise<AdamWThreads> {
    if (!Number.isSafeInteger(threads) || threads < 1) throw new RangeError(`AdamWThreads: threads must be an integer >= 1, got ${threads}`);
    const pieces = threads === 1 ? [] : await Promise.all(Array.from({ length: threads }, (_, i) => PieceThread.start(i)));
    return new AdamWThreads(threads, pieces);
  }

  /** `adamWStep`, split over the threads; state.step advances once all pieces are done. */
  async step(state: AdamWState, hyper: AdamWHyperParams, args: AdamWStepArgs): Promise<void> {
    if (this.state !== 'idle') throw new OptimizerError(`AdamWThreads: step while ${this.state === 'closed' ? 'closed' : 'another step runs'}`);
    if (this.threads === 1) return adamWStep(state, hyper, args);

    const scalars = adamWStepScalars(state, hyper, args);
    const arrays = { params: args.params, grads: args.grads, 'state.m': state.m, 'state.v': state.v };
    for (const [name, a] of Object.entries(arrays)) {
      if (!(a.buffer instanceof SharedArrayBuffer)) {
        throw new OptimizerError(`AdamWThreads (${this.threads} threads): ${name} is not a view of a SharedArrayBuffer (allocate it with sharedFloat32)`);
      }
    }
    const job = { p: args.params, g: args.grads, m: state.m, v: state.v, offset: state.start, hyper, scalars };
    const pieces = splitRanges(args.ranges, state.start, this.threads);
    this.state = 'stepping';
    // allSettled, not all: a failed piece must not let the next step start while others still run.
    const results = await Promise.allSettled(this.pieces.map((thread, i) => thread.run({ ...job, ranges: pieces[i]! })));
    if (this.state === 'stepping') this.state = 'idle';
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    // A failed step leaves params, m and v partly updated: the caller must not go on from them.
    if (failed) throw failed.reason;
    state.step = scalars.t;
  }

  /** Stops the threads; later steps are refused. */
  async close(): Promise<void> {
    this.state = 'closed';
    await Promise.all(this.pieces.map((t) => t.stop()));
  }
}

/**
 * Cuts sorted, disjoint `ranges` into `count` disjoint pieces with about equal element counts
 * (elements outside every range cost nothing, so they do not count). Cut points are local offsets
 * (from `start`) rounded to CUT_ALIGN elements; a piece may be empty when the ranges are short.
 */
function splitRanges(ranges: readonly DecayRange[], start: number, count: number): DecayRange[][] {
  const total = ranges.reduce((sum, r) => sum + r.end - r.start, 0);
  const cuts: number[] = [];
  let before = 0; // elements in ranges before r
  let r = 0;
  for (let k = 1; k < count; k++) {
    const target = Math.round((k * total) / count);
    while (r < ranges.length && before + ranges[r]!.end - ranges[r]!.start < target) before += ranges[r]!.end - ranges[r++]!.start;
    const at = r < ranges.length ? ranges[r]!.start + target - before : start;
    cuts.push(Math.max(cuts[k - 2] ?? start, start + Math.round((at - start) / CUT_ALIGN) * CUT_ALIGN));
  }
  const bounds = [start, ...cuts, Infinity];
  return Array.from({ length: count }, (_, k) =>
    ranges
      .map((x) => ({ start: Math.max(x.start, bounds[k]!), end: Math.min(x.end, bounds[k + 1]!), decay: x.decay }))
      .filter((x) => x.start < x.end),
  );
}

/** One worker thread and its pending piece (at most one: AdamWThreads runs one step at a time). */
class PieceThread {
  private pending: { resolve: () => void; reject: (err: Error) => void } | null = null;
  private failure: Error | null = null;

  private constructor(
    private readonly index: number,
    private readonly worker: Worker,
  ) {
    worker.on('message', (reply: PieceReply) => {
      const p = this.pending;
      this.pending = null;
      if (reply.ok) p?.resolve();
      else p?.reject(new OptimizerError(`AdamWThreads: thread ${index} failed: ${reply.message}`));
    });
    const fail = (err: Error) => {
      this.failure ??= new OptimizerError(`AdamWThreads: thread ${index} failed: ${err.message}`, { cause: err });
      this.pending?.reject(this.failure);
      this.pending = null;
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
    // Idle threads do not keep the process alive (a forgotten close() would hang it); run() refs.
    worker.unref();
  }

  static async start(index: number): Promise<PieceThread> {
    const worker = new Worker(new URL('./adamw-thread-entry.js', import.meta.url));
    await new Promise<void>((resolve, reject) => {
      worker.once('online', resolve);
      worker.once('error', (err) => reject(new OptimizerError(`AdamWThreads: thread ${index} could not start: ${err.message}`, { cause: err })));
    });
    return new PieceThread(index, worker);
  }

  run(job: PieceJob): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    this.worker.ref();
    return new Promise<void>((resolve, reject) => {
      this.pending = { resolve, reject };
      // SharedArrayBuffer views are shared by postMessage, not copied: the thread writes in place.
      this.worker.postMessage(job);
    }).finally(() => this.worker.unref());
  }

  async stop(): Promise<void> {
    this.failure ??= new OptimizerError(`AdamWThreads: thread ${this.index} is closed`);
    await this.worker.terminate();
  }
}
