import * as ort from 'onnxruntime-node';
import { EngineError } from '../errors.js';
import type { Graph } from '../onnx/graph.js';
import { paramFeeds } from '../onnx/param-feeds.js';
import { serializeGraph } from '../onnx/serialize.js';
import { sessionOptions, type EngineOptions } from '../onnx/session-options.js';
import type { FlatLayout } from '../weights/flat-layout.js';

// An onnxruntime session of a generation graph with its parameter feeds bound once, as views of
// the caller's flat buffer (nothing copied; in-place updates are seen by the next run).

export interface BoundSession {
  readonly session: ort.InferenceSession;
  readonly paramFeeds: Readonly<Record<string, ort.Tensor>>;
}

export async function bindSession(
  built: { readonly graph: Graph; readonly params: readonly { readonly name: string }[] },
  flat: Float32Array | Float64Array,
  layout: FlatLayout,
  o: EngineOptions,
): Promise<BoundSession> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(serializeGraph(built.graph), sessionOptions(o));
  } catch (cause) {
    throw new EngineError(`onnxruntime could not create the ${built.graph.name} session: ${(cause as Error).message}`, { cause });
  }
  return { session, paramFeeds: Object.freeze(paramFeeds(layout, flat, built.params.map((p) => p.name))) };
}

export async function runSession(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, fetches?: string[]): Promise<ort.InferenceSession.ReturnType> {
  try {
    return fetches ? await session.run(feeds, fetches) : await session.run(feeds);
  } catch (cause) {
    throw new EngineError(`onnxruntime run failed: ${(cause as Error).message}`, { cause });
  }
}
