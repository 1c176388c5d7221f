import type { DType } from '../shared/onnx/dtype.js';
import type { Value } from '../shared/onnx/graph.js';
import type { T5Config } from '../shared/models/t5-config.js';
import { buildT5Graph } from '../shared/models/t5-graph.js';
import type { Dim } from '../shared/onnx/shape.js';

// Where the training step's memory goes, counted on our own graph: the forward values that some
// gradient node reads must stay alive from the forward until the backward uses them (what
// activation checkpointing would trade for recompute). The training graph starts with exactly
// the forward graph's nodes (same builder, same order), so the nodes after that count are the
// backward. ORT's fusions keep a few values fewer or more; this is the graph's own requirement.

export interface SavedActivations {
  /** Bytes by class: attention maps [.., S, S], feed-forward hidden [.., d_ff], the rest. */
  readonly attentionMiB: number;
  readonly feedForwardMiB: number;
  readonly otherMiB: number;
  readonly totalMiB: number;
  readonly values: number;
}

const MiB = 1024 * 1024;
const BYTES: Readonly<Record<DType, number>> = { float32: 4, float64: 8, int32: 4, int64: 8, bool: 1 };

export function savedActivations(config: T5Config, dims: { batch: number; src_len: number; tgt_len: number }, dropout: boolean): SavedActivations {
  const forwardNodes = buildT5Graph(config, { dtype: 'float32', dropout, gradients: false }).graph.nodes.length;
  const { graph } = buildT5Graph(config, { dtype: 'float32', dropout, gradients: 'rows' });
  const forwardValues = new Set<Value>(graph.nodes.slice(0, forwardNodes).flatMap((n) => n.outputs));
  const saved = new Set<Value>();
  for (const n of graph.nodes.slice(forwardNodes)) for (const v of n.inputs) if (forwardValues.has(v)) saved.add(v);
  const size = (d: Dim): number => {
    if (typeof d === 'number') return d;
    return d.split('*').reduce((p, s) => p * (/^\d+$/.test(s) ? Number(s) : dims[s as keyof typeof dims]), 1);
  };
  let attention = 0;
  let feedForward = 0;
  let other = 0;
  for (const v of saved) {
    const shape = v.shape.map(size);
    const bytes = shape.reduce((a, b) => a * b, 1) * BYTES[v.dtype];
    const last2 = shape.slice(-2);
    if (v.rank >= 3 && last2[1] !== config.dModel && (last2[0] === dims.src_len || last2[0] === dims.tgt_len) && (last2[1] === dims.src_len || last2[1] === dims.tgt_len)) attention += bytes;
    else if (shape.at(-1) === config.dFf) feedForward += bytes;
    else other += bytes;
  }
  return {
    attentionMiB: attention / MiB,
    feedForwardMiB: feedForward / MiB,
    otherMiB: other / MiB,
    totalMiB: (attention + feedForward + other) / MiB,
    values: saved.size,
  };
}
