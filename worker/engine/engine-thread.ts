import { Worker } from 'node:worker_threads';
import { EngineError } from '../../shared/errors.js';
import type { Seq2SeqBatch } from '../../shared/models/batch.js';
import type { ModelBatch } from '../../shared/models/model-family.js';
import type { ModelSpec } from '../../shared/models/model-spec.js';
import type { DropoutKey } from './dropout-masks.js';
import { arrive, move, type EngineThreadData, type FromThread, type ToThread } from './engine-thread-protocol.js';
import type { BlockEngineOptions, GradientSink } from './block-engine.js';
import type { LossSums } from './t5-engine.js';
import { isHolder, type ParamHolder, type Params, type StepTiming, type TrainingEngine } from './training-engine.js';
import type { UnitFetcher } from './unit-params.js';

// overlap_comm: the block engine in a worker thread (engine-thread-entry.ts). onnxruntime-node's
// session.run() holds the thread that calls it, so on the main thread no reduce-scatter could make
// progress during a backward. Here the thread computes block k-1's backward while the main thread
// reduce-scatters block k's gradients. For the length of a call the parameter buffer belongs to the
// thread (transferred, not shared: onnxruntime-node refuses SharedArrayBuffer tensors); the holder
// gets it back, same bytes, when the call settles. At stage 3 the thread asks for each position's
// parameter units and the main thread's gatherer answers, moving the gathered buffers over.

/** Units (buffers) the thread may run ahead of the reduce-scatters: two, as DeepSpeed's double buffering. */
const MAX_UNITS_IN_FLIGHT = 2;

interface Pending {
  readonly holder: ParamHolder | null;
  readonly fetcher: UnitFetcher | null;
  readonly sink: GradientSink | null;
  readonly resolve: (loss: LossSums & Partial<StepTiming>) => void;
  readonly reject: (err: Error) => void;
  /** Sink calls still running (the call settles after them). */
  sinks: Promise<unknown>[];
}

export class ThreadedBlockEngine implements TrainingEngine {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private failure: Error | null = null;
  private readonly released = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();

  private constructor(
    private readonly thread: Worker,
    readonly paramCount: number,
    readonly units: readonly { readonly lo: number; readonly hi: number }[],
    readonly frozenUnits: readonly { readonly lo: number; readonly hi: number }[],
    readonly traces: NonNullable<TrainingEngine['traces']>,
  ) {
    thread.on('message', (m: FromThread) => this.onMessage(m));
    const fail = (err: Error) => {
      this.failure = new EngineError(`engine thread failed: ${err.message}`, { cause: err });
      for (const p of this.pending.values()) p.reject(this.failure);
      for (const r of this.released.values()) r.reject(this.failure);
      this.pending.clear();
      this.released.clear();
    };
    thread.on('error', fail);
    thread.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
  }

  /** `frozen`: where the thread loads the family's frozen parameters from (EngineThreadData.frozen). */
  static async create(model: ModelSpec, options: BlockEngineOptions, frozen: EngineThreadData['frozen'] = null): Promise<ThreadedBlockEngine> {
    const data: EngineThreadData = { model, options, maxUnitsInFlight: MAX_UNITS_IN_FLIGHT, frozen };
    const thread = new Worker(new URL('./engine-thread-entry.js', import.meta.url), { workerData: data });
    const ready = await new Promise<Extract<FromThread, { type: 'ready' }>>((resolve, reject) => {
      thread.once('message', (m: FromThread) => (m.type === 'ready' ? resolve(m) : reject(new EngineError(`engine thread: expected ready, got ${m.type}`))));
      thread.once('error', (err) => reject(new EngineError(`engine thread could not start: ${err.message}`, { cause: err })));
    });
    return new ThreadedBlockEngine(thread, ready.paramCount, ready.units, ready.frozenUnits, ready.traces);
  }

  async forwardBackward(params: Params, batch: ModelBatch, dropout: DropoutKey | undefined, sink: GradientSink): Promise<LossSums & StepTiming> {
    const loss = await this.call(params, sink, (id, moved) => ({ type: 'forwardBackward', id, params: moved, batch, dropout }));
    return { lossSum: loss.lossSum, tokenCount: loss.tokenCount, computeStart: loss.computeStart!, computeEnd: loss.computeEnd! };
  }

  async forwardLoss(params: Params, batch: ModelBatch): Promise<LossSums> {
    const loss = await this.call(params, null, (id, moved) => ({ type: 'forwardLoss', id, params: moved, batch }));
    return { lossSum: loss.lossSum, tokenCount: loss.tokenCount };
  }

  releaseEvaluation(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.released.set(id, { resolve, reject });
      this.post({ type: 'releaseEvaluation', id });
    });
  }

  async release(): Promise<void> {
    if (this.failure) return;
    const released = new Promise<void>((resolve) => this.thread.once('exit', () => resolve()));
    this.post({ type: 'release' });
    await released;
  }

  private call(params: Params, sink: GradientSink | null, message: (id: number, params: ReturnType<typeof move> | null) => ToThread): Promise<LossSums & Partial<StepTiming>> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const holder = isHolder(params) ? params : null;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { holder, fetcher: holder ? null : (params as UnitFetcher), sink, resolve, reject, sinks: [] });
      if (holder) this.post(message(id, move(holder.array)), [holder.array.buffer as ArrayBuffer]);
      else this.post(message(id, null));
    });
  }

  /** Stage 3: gather what the thread's position needs and move it over. */
  private fetchFor(p: Pending, id: number, position: number): void {
    p.fetcher!.fetch(position).then(
      (f) => {
        const units = [...f.units].map(([unit, values]) => ({ unit, values: move(values) }));
        const buffers = [...new Set(units.map((u) => u.values.buffer))];
        this.post({ type: 'fetched', id, position, units, freeAfter: f.freeAfter }, buffers);
      },
      (err: Error) => this.post({ type: 'fetchFailed', id, position, message: err.message }),
    );
  }

  private onMessage(m: FromThread): void {
    if (m.type === 'ready' || m.type === 'released') return;
    if (m.type === 'evaluationReleased') {
      this.released.get(m.id)?.resolve();
      this.released.delete(m.id);
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.type === 'fetch') return this.fetchFor(p, m.id, m.position);
    if (m.type === 'unit') {
      // Taken once the sink is done with it (for a completed bucket: its reduce-scatter).
      // A failed sink fails the call when the thread is done with it (the parameters come back first).
      const done = Promise.resolve().then(() => p.sink!(m.lo, m.hi, arrive(m.grad)));
      const taken = () => this.post({ type: 'taken' });
      void done.then(taken, taken);
      p.sinks.push(done);
      return;
    }
    this.pending.delete(m.id);
    if (m.params && p.holder) p.holder.array = arrive(m.params);
    if (m.type === 'failed') {
      void Promise.allSettled(p.sinks).then(() => p.reject(new EngineError(`engine thread: ${m.message}`)));
      return;
    }
    Promise.all(p.sinks).then(() => p.resolve(m.loss), p.reject);
  }

  private post(m: ToThread, transfer: ArrayBuffer[] = []): void {
    this.thread.postMessage(m, transfer);
  }
}
