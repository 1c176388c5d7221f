import * as ort from 'onnxruntime-node';
import type { FlatLayout } from '../weights/flat-layout.js';

/**
 * The named parameters as tensors viewing their slices of the flat buffer (no copy), in its dtype:
 * how every session (training, eval, generation) is fed the weights the worker owns.
 */
export function paramFeeds(layout: FlatLayout, flat: Float32Array | Float64Array, names: readonly string[]): Record<string, ort.Tensor> {
  const dtype = flat instanceof Float64Array ? 'float64' : 'float32';
  const feeds: Record<string, ort.Tensor> = {};
  for (const name of names) feeds[name] = new ort.Tensor(dtype, layout.view(flat, name), [...layout.get(name).shape]);
  return feeds;
}
