import * as ort from 'onnxruntime-node';
import type { AnyTypedArray } from '../../shared/onnx/dtype.js';
import type { Graph } from '../../shared/onnx/graph.js';
import { serializeGraph } from '../../shared/onnx/serialize.js';

// Run builder graphs in onnxruntime (CPU, one thread: test files run in parallel processes).

export interface RunOptions {
  /** Sizes of named dims ('batch' -> 3), for graphs built with symbolic shapes. */
  readonly dims?: Readonly<Record<string, number>>;
  /** Output names to fetch; all outputs when absent. */
  readonly fetches?: readonly string[];
}

/** One output: its data and the dims ORT reports (so tests can check run-time shapes). */
export interface OutputTensor {
  readonly data: AnyTypedArray;
  readonly dims: readonly number[];
}

/** Run a builder graph once in a fresh session and return its outputs' data by name. */
export async function runGraph(graph: Graph, feeds: Record<string, AnyTypedArray>, options: RunOptions = {}): Promise<Record<string, AnyTypedArray>> {
  const session = await sessionFor(graph);
  try {
    return await runSession(session, graph, feeds, options);
  } finally {
    await session.release();
  }
}

export async function sessionFor(graph: Graph): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(serializeGraph(graph), { intraOpNumThreads: 1, interOpNumThreads: 1 });
}

export async function runSession(
  session: ort.InferenceSession,
  graph: Graph,
  feeds: Record<string, AnyTypedArray>,
  options: RunOptions = {},
): Promise<Record<string, AnyTypedArray>> {
  const out = await runSessionTensors(session, graph, feeds, options);
  const result: Record<string, AnyTypedArray> = {};
  for (const [k, t] of Object.entries(out)) result[k] = t.data;
  return result;
}

export async function runSessionTensors(
  session: ort.InferenceSession,
  graph: Graph,
  feeds: Record<string, AnyTypedArray>,
  options: RunOptions = {},
): Promise<Record<string, OutputTensor>> {
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const v of graph.inputs) {
    const data = feeds[v.name];
    if (!data) throw new Error(`no feed for ${v.name}`);
    const dims = v.shape.map((d) => {
      if (typeof d === 'number') return d;
      const size = options.dims?.[d];
      if (size === undefined) throw new Error(`input ${v.name} has symbolic dim ${d}: pass its size in options.dims`);
      return size;
    });
    ortFeeds[v.name] = new ort.Tensor(tensorType(data), data, dims);
  }
  const out = options.fetches ? await session.run(ortFeeds, options.fetches) : await session.run(ortFeeds);
  const result: Record<string, OutputTensor> = {};
  for (const [k, t] of Object.entries(out)) result[k] = { data: t.data as AnyTypedArray, dims: [...t.dims] };
  return result;
}

function tensorType(data: AnyTypedArray): 'float32' | 'float64' | 'int32' | 'int64' | 'bool' {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  return 'bool';
}
