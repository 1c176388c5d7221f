import * as ort from 'onnxruntime-node';
import type { FlatLayout } from '../weights/flat-layout.js';

/**
 * The named parameters as tensors viewing their slices of the flat buffer (no copy), in its dtype:
 * how every session (training, eval, generation) is fed the weights the worker owns. `names` are
 * parameter names fed under their own name, or a map from a graph's input name to the parameter
 * (a block graph shared by several layers names its inputs inside the block).
 */
export function paramFeeds(layout: FlatLayout, flat: Float32Array | Float64Array, names: readonly string[] | ReadonlyMap<string, string>): Record<string, ort.Tensor> {
  const dtype = flat instanceof Float64Array ? 'float64' : 'float32';
  const feeds: Record<string, ort.Tensor> = {};
  const entries: Iterable<readonly [string, string]> = Array.isArray(names) ? names.map((n) => [n, n] as const) : (names as ReadonlyMap<string, string>).entries();
  for (const [input, name] of entries) feeds[input] = new ort.Tensor(dtype, layout.view(flat, name), [...layout.get(name).shape]);
  return feeds;
}
