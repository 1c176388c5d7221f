import * as ort from 'onnxruntime-node';
import { EngineError } from '../../shared/errors.js';
import type { FloatDType } from '../../shared/onnx/dtype.js';
import { numel } from '../../shared/models/t5-params.js';
import type { DropoutSite } from '../../shared/models/t5-layers.js';
import { sessionOptions, type EngineOptions } from '../../shared/onnx/session-options.js';
import { fillDropoutMask, type DropoutKey } from './dropout-masks.js';
import type { LossSums } from './t5-engine.js';

// What both engines (whole-model and block) do around onnxruntime the same way: make a session,
// run one, read the loss outputs, check the flat buffers they are given, feed dropout masks.

export async function createSession(bytes: Uint8Array, what: string, o: EngineOptions): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(bytes, sessionOptions(o));
  } catch (cause) {
    throw new EngineError(`onnxruntime could not create the ${what} session: ${(cause as Error).message}`, { cause });
  }
}

/** session.run, its failure an EngineError naming `what`. */
export async function runSession(session: ort.InferenceSession, what: string, feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor | null>) {
  try {
    return await session.run(feeds, fetches);
  } catch (cause) {
    throw new EngineError(`onnxruntime run of ${what} failed: ${(cause as Error).message}`, { cause });
  }
}

/** The loss outputs of a T5 training or evaluation graph. */
export function lossSums(out: Record<string, ort.Tensor>): LossSums {
  return { lossSum: Number(out.loss_sum!.data[0]), tokenCount: Number(out.token_count!.data[0]) };
}

/** A flat buffer of the engine's dtype holding at least `count` elements (a padded one may be longer). */
export function checkFlat(a: Float32Array | Float64Array, dtype: FloatDType, count: number, what: string): void {
  const want = dtype === 'float32' ? Float32Array : Float64Array;
  if (!(a instanceof want) || a.length < count) {
    throw new EngineError(`${what}: expected a ${want.name} of at least ${count} elements (a padded flat buffer may be longer), got ${a.constructor.name}(${a.length})`);
  }
}

/**
 * Keep-masks for a graph's dropout sites, each drawn under the whole model's site index
 * (`indexOf`), so any cut of the model draws the same masks for the same (seed, step, sample).
 */
export function dropoutMaskFeeds(
  sites: readonly DropoutSite[],
  dims: Readonly<Record<string, number>>,
  rate: number,
  indexOf: (site: DropoutSite, position: number) => number,
  key: DropoutKey | undefined,
): Record<string, ort.Tensor> {
  if (sites.length === 0) return {};
  if (!key) throw new EngineError('this engine applies dropout: forwardBackward needs a dropout key (seed, step, sample indices)');
  const feeds: Record<string, ort.Tensor> = {};
  sites.forEach((site, i) => {
    const shape = site.shape.map((d) => (typeof d === 'number' ? d : dims[d]!));
    const mask = new Uint8Array(numel(shape));
    fillDropoutMask(mask, shape, site.rate ?? rate, indexOf(site, i), key);
    feeds[site.input] = new ort.Tensor('bool', mask, shape);
  });
  return feeds;
}
