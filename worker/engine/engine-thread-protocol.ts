import type { ModelBatch } from '../../shared/models/model-family.js';
import type { ModelSpec } from '../../shared/models/model-spec.js';
import type { WorkerModelData } from '../worker-model.js';
import type { DropoutKey } from './dropout-masks.js';
import type { BlockEngineOptions } from './block-engine.js';
import type { LossSums } from './t5-engine.js';
import type { StepTiming } from './training-engine.js';

// The messages between the main thread and the engine thread (engine-thread.ts, -entry.ts).
// Parameter buffers and gradient units are transferred (moved), never copied or shared.

export interface EngineThreadData {
  /** The model: the thread builds its family again. */
  readonly model: ModelSpec;
  /**
   * Where the thread gets the family's frozen parameters (LoRA's base): it loads or initialises them
   * itself (WorkerModel.frozen), because Node cannot move an array over 4 GiB between threads
   * (structured clone refuses it, and a transfer keeps only the length modulo 4 GiB: polyglot-ko's
   * base is 5.3 GB); 'partitioned': ZeRO stage 3, its units arrive with each pass's fetches. Null:
   * the model has none.
   */
  readonly frozen: { readonly model: WorkerModelData; readonly seed: number } | 'partitioned' | null;
  readonly options: BlockEngineOptions;
  /** Gradient units the thread may post before it waits for the main thread to take one. */
  readonly maxUnitsInFlight: number;
}

/** A Float32Array as it crosses: its buffer (transferred) and where in the buffer it lies. */
export interface MovedArray {
  readonly buffer: ArrayBuffer;
  readonly byteOffset: number;
  readonly length: number;
}

// `params: null` is a stage-3 call: the thread asks for each position's units ('fetch') and the
// main thread's gatherer answers ('fetched'), the gathered buffers transferred.
export type ToThread =
  | { readonly type: 'forwardBackward'; readonly id: number; readonly params: MovedArray | null; readonly batch: ModelBatch; readonly dropout: DropoutKey | undefined }
  | { readonly type: 'forwardLoss'; readonly id: number; readonly params: MovedArray | null; readonly batch: ModelBatch }
  | { readonly type: 'fetched'; readonly id: number; readonly position: number; readonly units: readonly { readonly unit: number; readonly values: MovedArray }[]; readonly freeAfter: readonly number[] }
  | { readonly type: 'fetchFailed'; readonly id: number; readonly position: number; readonly message: string }
  /** The main thread took a unit (its reduce-scatter finished): one fewer in flight. */
  | { readonly type: 'taken' }
  | { readonly type: 'releaseEvaluation'; readonly id: number }
  | { readonly type: 'release' };

export type FromThread =
  | {
      readonly type: 'ready';
      readonly paramCount: number;
      readonly units: readonly { readonly lo: number; readonly hi: number }[];
      readonly frozenUnits: readonly { readonly lo: number; readonly hi: number }[];
      readonly traces: { readonly train: readonly (readonly number[])[]; readonly eval: readonly (readonly number[])[] };
    }
  | { readonly type: 'fetch'; readonly id: number; readonly position: number }
  | { readonly type: 'unit'; readonly id: number; readonly lo: number; readonly hi: number; readonly grad: MovedArray }
  | { readonly type: 'done'; readonly id: number; readonly loss: LossSums & Partial<StepTiming>; readonly params: MovedArray }
  | { readonly type: 'failed'; readonly id: number; readonly message: string; readonly params: MovedArray | null }
  | { readonly type: 'released' }
  | { readonly type: 'evaluationReleased'; readonly id: number };

export function move(a: Float32Array): MovedArray {
  return { buffer: a.buffer as ArrayBuffer, byteOffset: a.byteOffset, length: a.length };
}

export function arrive(m: MovedArray): Float32Array {
  return new Float32Array(m.buffer, m.byteOffset, m.length);
}
