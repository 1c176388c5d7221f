import { GraphBuildError } from '../errors.js';
import type { Graph, Node, Value } from '../onnx/graph.js';
import { liveNodes, serializeSubgraph } from '../onnx/serialize.js';
import { gradientParts } from './backward.js';

// [Note: block models] One block of a model (an embedding, a transformer layer, the head) as a
// pair of ONNX models, the way DeepSpeed and FSDP run a model block by block:
//
//   forward   block inputs -> block outputs
//   backward  block inputs + d(loss)/d(outputs) ("seeds") -> d(loss)/d(inputs), d(loss)/d(params)
//
// With activation checkpointing ('recompute') the backward model contains the forward again and
// recomputes it from the saved block inputs: only block inputs stay alive between the passes.
// Without it ('saved') the graph is cut where the backward reads the forward: the forward model
// also outputs those values (the saved activations) and the backward model takes them as inputs,
// so nothing is computed twice. A head block (a scalar loss, nothing after it) is one fused model
// computing the loss and its gradients at once.

export interface BlockDefinition {
  readonly graph: Graph;
  /** Float inputs coming from earlier blocks: the backward returns their gradients. */
  readonly activations: readonly Value[];
  /** Parameter inputs: the backward returns their gradients (dense and/or rows). */
  readonly params: readonly Value[];
  /** What the block hands on (seeded in the backward), or for a head its loss outputs. */
  readonly outputs: readonly { readonly name: string; readonly value: Value }[];
  /** A head: the scalar output differentiated with seed 1 (other outputs are not differentiated). */
  readonly loss?: Value;
}

export type BlockMode = 'recompute' | 'saved';

export interface ParamGradientNames {
  readonly param: string;
  /** Dense gradient output, or null (none, or rows only). */
  readonly dense: string | null;
  /** Row gradients to add: `rows` [n, columns] at row `indices` [n]. */
  readonly rows: readonly { readonly indices: string; readonly rows: string }[];
}

export interface BlockModels {
  /** Null for a head: its forward is part of `backward` (fused). */
  readonly forward: Uint8Array | null;
  /** The head's forward-only model (evaluation); null for other blocks (`forward` serves). */
  readonly lossOnly: Uint8Array | null;
  /** Null for a block with nothing to differentiate (no activation input, no trainable parameter: an embedding under LoRA). */
  readonly backward: Uint8Array | null;
  /** Forward outputs fed back into the backward under the same names (empty when recomputing). */
  readonly saved: readonly string[];
  /** For each block output: the backward input taking its gradient. */
  readonly seeds: readonly { readonly output: string; readonly seed: string }[];
  readonly activationGradients: readonly { readonly activation: string; readonly gradient: string }[];
  readonly paramGradients: readonly ParamGradientNames[];
}

/** Append the block's backward to its graph and cut it into models (see the note). */
/** A block has a backward unless it has nothing to differentiate: no loss, no activation input, no trainable parameter. */
export function hasBackward(def: BlockDefinition): boolean {
  return def.loss !== undefined || def.activations.length > 0 || def.params.length > 0;
}

export function blockModels(def: BlockDefinition, mode: BlockMode): BlockModels {
  const { graph: g } = def;
  if (!hasBackward(def)) {
    // Its backward would compute nothing: the backward pass stops at the block after it.
    const forward = serializeSubgraph(g, def.outputs, readInputs(g, def.outputs, new Set()));
    return { forward, lossOnly: null, backward: null, saved: [], seeds: [], activationGradients: [], paramGradients: [] };
  }
  const forwardNodes = new Set<Node>(g.nodes);
  const seeds = def.loss ? [] : def.outputs.map((o) => ({ output: o.name, seed: g.input(`seed.${o.name}`, o.value.dtype, o.value.shape) }));
  const targets = def.loss ? [{ value: def.loss }] : def.outputs.map((o, i) => ({ value: o.value, seed: seeds[i]!.seed }));
  const parts = gradientParts(targets, [...def.activations, ...def.params]);

  const gradOutputs: { name: string; value: Value }[] = [];
  const activationGradients = def.activations.map((a, i) => {
    const p = parts[i]!;
    if (!p.dense || p.rows.length > 0) throw new GraphBuildError(`block ${g.name}: activation ${a.name} has no dense gradient`);
    gradOutputs.push({ name: `grad.${a.name}`, value: p.dense });
    return { activation: a.name, gradient: `grad.${a.name}` };
  });
  const paramGradients = def.params.map((v, i) => {
    const p = parts[def.activations.length + i]!;
    if (p.dense) gradOutputs.push({ name: `grad.${v.name}`, value: p.dense });
    const rows = p.rows.map((r, k) => {
      gradOutputs.push({ name: `rows.${v.name}.${k}`, value: r.rows }, { name: `row_indices.${v.name}.${k}`, value: r.indices });
      return { indices: `row_indices.${v.name}.${k}`, rows: `rows.${v.name}.${k}` };
    });
    return { param: v.name, dense: p.dense ? `grad.${v.name}` : null, rows };
  });
  const seedNames = seeds.map((s) => ({ output: s.output, seed: s.seed.name }));

  if (def.loss) {
    const backward = serializeSubgraph(g, [...def.outputs, ...gradOutputs], readInputs(g, [...def.outputs, ...gradOutputs], new Set()));
    const lossOnly = serializeSubgraph(g, def.outputs, readInputs(g, def.outputs, new Set()));
    return { forward: null, lossOnly, backward, saved: [], seeds: seedNames, activationGradients, paramGradients };
  }
  if (mode === 'recompute') {
    return {
      forward: serializeSubgraph(g, def.outputs, readInputs(g, def.outputs, new Set())),
      lossOnly: null,
      backward: serializeSubgraph(g, gradOutputs, readInputs(g, gradOutputs, new Set())),
      saved: [], seeds: seedNames, activationGradients, paramGradients,
    };
  }
  // 'saved': cut at every value a forward node computed; those the backward reads are saved.
  const computedForward = new Set<Value>([...forwardNodes].flatMap((n) => n.outputs));
  const savedValues = readInputs(g, gradOutputs, computedForward).filter((v) => computedForward.has(v));
  const backwardInputs = readInputs(g, gradOutputs, computedForward);
  const forwardOutputs = [...def.outputs, ...savedValues.map((v) => ({ name: v.name, value: v }))];
  return {
    forward: serializeSubgraph(g, forwardOutputs, readInputs(g, forwardOutputs, new Set())),
    lossOnly: null,
    backward: serializeSubgraph(g, gradOutputs, backwardInputs),
    saved: savedValues.map((v) => v.name), seeds: seedNames, activationGradients, paramGradients,
  };
}

/**
 * The values a model computing `outputs` must take as inputs: graph inputs its nodes read, and
 * values in `cut` it reads (the cut stops the walk there). Graph inputs first, in declaration order.
 */
function readInputs(g: Graph, outputs: readonly { readonly value: Value }[], cut: ReadonlySet<Value>): Value[] {
  const stop = new Set<Value>([...cut, ...g.inputs]);
  const read = new Set<Value>();
  for (const o of outputs) if (stop.has(o.value)) read.add(o.value);
  for (const n of liveNodes(g, outputs, stop)) for (const v of n.inputs) if (stop.has(v)) read.add(v);
  return [...g.inputs.filter((v) => read.has(v)), ...[...read].filter((v) => !g.inputs.includes(v)).sort((a, b) => a.id - b.id)];
}
