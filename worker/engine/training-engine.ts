import type { Seq2SeqBatch } from '../../shared/models/batch.js';
import { isCausalBatch, type ModelBatch } from '../../shared/models/model-family.js';
import type { DropoutKey } from './dropout-masks.js';
import type { BlockEngine, GradientSink } from './block-engine.js';
import type { LossSums, T5Engine } from './t5-engine.js';
import type { UnitFetcher } from './unit-params.js';

// What the ZeRO step needs from an engine: forward+backward of one micro-batch with its gradient
// handed out unit by unit (end to start of the flat buffer), and an evaluation loss. Parameters
// are passed in a holder because an engine in a worker thread borrows the buffer while it runs
// (onnxruntime-node refuses SharedArrayBuffer tensors, so the buffer is transferred there and
// back, never shared) and puts it back when the call settles. At ZeRO stage 3 there is no whole
// buffer: the engine is handed a UnitFetcher and receives each block's units along its trace.

/** The flat parameters (padded length); `array` may be replaced by an equal-content array after a call. */
export interface ParamHolder {
  array: Float32Array;
}

export interface StepTiming {
  /** performance.timeOrigin + performance.now() at the first and last kernel of the call. */
  readonly computeStart: number;
  readonly computeEnd: number;
}

/** Where a call reads parameters: the whole (padded) flat buffer, or stage 3's unit fetcher. */
export type Params = ParamHolder | UnitFetcher;

export interface TrainingEngine {
  readonly paramCount: number;
  /** Gradient units [lo, hi) in the order forwardBackward hands them out; also stage 3's parameter units. */
  readonly units: readonly { readonly lo: number; readonly hi: number }[];
  /**
   * Stage 3 with a frozen base (LoRA): the base's units, partitioned like the trainable ones and
   * numbered after them in `traces`; empty when the engine holds the base whole (or there is none).
   */
  readonly frozenUnits: readonly { readonly lo: number; readonly hi: number }[];
  /** The units (indices into `units`, then `frozenUnits`) each position of a training / evaluation pass needs; null: no partitioned parameters. */
  readonly traces: { readonly train: readonly (readonly number[])[]; readonly eval: readonly (readonly number[])[] } | null;
  forwardBackward(params: Params, batch: ModelBatch, dropout: DropoutKey | undefined, sink: GradientSink): Promise<LossSums & StepTiming>;
  forwardLoss(params: Params, batch: ModelBatch): Promise<LossSums>;
  /** Free what evaluation holds (its sessions' memory) until the next forwardLoss. */
  releaseEvaluation(): Promise<void>;
  release(): Promise<void>;
}

export function isHolder(p: Params): p is ParamHolder {
  return 'array' in p;
}

export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** The block engine on the calling thread: each unit's sink call is awaited before the backward goes on. */
export class LocalBlockEngine implements TrainingEngine {
  constructor(readonly engine: BlockEngine) {}

  get paramCount(): number {
    return this.engine.paramCount;
  }

  get units() {
    return this.engine.units;
  }

  get frozenUnits() {
    return this.engine.frozenUnits;
  }

  get traces() {
    return { train: this.engine.trainTrace, eval: this.engine.evalTrace };
  }

  async forwardBackward(params: Params, batch: ModelBatch, dropout: DropoutKey | undefined, sink: GradientSink): Promise<LossSums & StepTiming> {
    const computeStart = now();
    const loss = await this.engine.forwardBackward(isHolder(params) ? params.array : params, batch, dropout, sink);
    return { ...loss, computeStart, computeEnd: now() };
  }

  forwardLoss(params: Params, batch: ModelBatch): Promise<LossSums> {
    return this.engine.forwardLoss(isHolder(params) ? params.array : params, batch);
  }

  releaseEvaluation(): Promise<void> {
    return this.engine.releaseEvaluation();
  }

  release(): Promise<void> {
    return this.engine.release();
  }
}

/** The whole-model engine (the oracle) behind the same interface: one unit, the whole buffer. */
export class WholeModelEngine implements TrainingEngine {
  constructor(readonly engine: T5Engine) {}

  get paramCount(): number {
    return this.engine.paramCount;
  }

  get units() {
    return [{ lo: 0, hi: this.engine.paramCount }];
  }

  /** The oracle runs on a whole buffer only (no stage 3). */
  readonly traces = null;
  readonly frozenUnits = [];

  async forwardBackward(params: Params, batch: ModelBatch, dropout: DropoutKey | undefined, sink: GradientSink): Promise<LossSums & StepTiming> {
    if (!isHolder(params)) throw new TypeError('the whole-model engine needs the whole parameter buffer (ZeRO stage 3 runs on the block engine)');
    const computeStart = now();
    const grad = new Float32Array(this.engine.paramCount);
    const loss = await this.engine.forwardBackward(params.array, grad, seq2seq(batch), dropout);
    const computeEnd = now();
    await sink(0, grad.length, grad);
    return { ...loss, computeStart, computeEnd };
  }

  forwardLoss(params: Params, batch: ModelBatch): Promise<LossSums> {
    if (!isHolder(params)) throw new TypeError('the whole-model engine needs the whole parameter buffer (ZeRO stage 3 runs on the block engine)');
    return this.engine.forwardLoss(params.array, seq2seq(batch));
  }

  async releaseEvaluation(): Promise<void> {
    // The oracle keeps its one evaluation session.
  }

  release(): Promise<void> {
    return this.engine.release();
  }
}

/** The whole-model engine is T5's oracle only. */
function seq2seq(batch: ModelBatch): Seq2SeqBatch {
  if (isCausalBatch(batch)) throw new TypeError('the whole-model engine runs T5 only; causal-LM models run on the block engine');
  return batch;
}
