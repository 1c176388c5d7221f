import type { FloatDType } from '../onnx/dtype.js';
import { Graph, type Value } from '../onnx/graph.js';
import { add, concat, elementIndexLike, equal, gather, greaterOrEqual, logSoftmax, min, shapeOf, sub, unsqueeze, where } from '../onnx/ops.js';
import type { NeoXConfig } from './neox-config.js';
import { NEOX_DATA_INPUTS } from './neox-graph.js';
import { layerNorm, neoxLayer, NeoXDropout, rotaryTables } from './neox-layers.js';
import { neoxParamSpecs } from './neox-params.js';
import { finfoMin, linear } from './t5-layers.js';
import type { ParamSpec } from './t5-params.js';

// GPTNeoXForCausalLM for decoding, with a key/value cache (HF's `past_key_values`), built from the
// layer functions the training graphs use (neox-layers.ts; the cache enters through neoxLayer's
// `cache` hook, so the training graphs are unchanged).
//
// Inputs: input_ids [b, n] (the new tokens), attention_mask [b, past + n] (every key so far, left
// padding 0), position_ids [b, n] (HF generate's cumsum(mask) - 1, see NeoXFamily's positionIds),
// past_key.i / past_value.i [b, heads, past, head] per layer (past may be 0). Outputs: log_probs
// [b, vocab], the log-softmax of the last new position's logits (float32 when the graph is), and
// present_key.i / present_value.i [b, heads, past + n, head]. One graph is the prefill (n = prompt
// length, past = 0), a cached step (n = 1) and decoding without a cache (the whole sequence, past 0).
// No dropout, no LoRA inputs: a LoRA model decodes with its adapters merged into the weights.

export const DECODE_BATCH = 'batch';
export const DECODE_NEW = 'new_len';
export const DECODE_PAST = 'past_len';
export const DECODE_TOTAL = `${DECODE_PAST}+${DECODE_NEW}`;
export const DECODE_LOG_PROBS = 'log_probs';

export const NEOX_DECODE_INPUTS = {
  inputIds: NEOX_DATA_INPUTS.inputIds,
  attentionMask: NEOX_DATA_INPUTS.attentionMask,
  positionIds: NEOX_DATA_INPUTS.positionIds,
} as const;

export const neoxPastKey = (layer: number): string => `past_key.${layer}`;
export const neoxPastValue = (layer: number): string => `past_value.${layer}`;
export const neoxPresentKey = (layer: number): string => `present_key.${layer}`;
export const neoxPresentValue = (layer: number): string => `present_value.${layer}`;

export interface NeoXDecodeGraph {
  readonly graph: Graph;
  /** The parameter inputs, the model's flat layout (neoxParamSpecs). */
  readonly params: readonly ParamSpec[];
}

/**
 * The additive bias [b, 1, n, past + n] of n new queries against every key: query q sits at key
 * position past + q and sees keys k <= past + q that are not padding (HF's causal mask with an
 * offset, merged with the padding mask by Min as causalBias does).
 */
export function cachedCausalBias(attentionMask: Value, inputIds: Value, dtype: FloatDType): Value {
  const g = attentionMask.graph;
  const zero = g.scalar(0, dtype);
  const masked = g.scalar(finfoMin(dtype), dtype);
  const one = g.scalar(1, 'int64');
  const keys = elementIndexLike(gather(attentionMask, g.scalar(0, 'int64'), 0)); // [total]: 0..total-1
  const queries = elementIndexLike(gather(inputIds, g.scalar(0, 'int64'), 0)); // [n]: 0..n-1
  const past = sub(gather(shapeOf(attentionMask), one, 0), gather(shapeOf(inputIds), one, 0));
  const causal = where(greaterOrEqual(unsqueeze(add(queries, past), [1]), unsqueeze(keys, [0])), zero, masked); // [n, total]
  const padding = where(equal(attentionMask, g.scalar(0, 'int32')), masked, zero); // [b, total]
  return min(causal, unsqueeze(padding, [1, 2]));
}

export function buildNeoXDecodeGraph(config: NeoXConfig, dtype: FloatDType = 'float32'): NeoXDecodeGraph {
  const g = new Graph('gpt_neox_decode');
  const specs = neoxParamSpecs(config);
  const p = new Map<string, Value>(specs.map((s) => [s.name, g.input(s.name, dtype, s.shape)]));
  const P = (name: string): Value => p.get(name)!;
  const I = NEOX_DECODE_INPUTS;
  const inputIds = g.input(I.inputIds, 'int32', [DECODE_BATCH, DECODE_NEW]);
  const attentionMask = g.input(I.attentionMask, 'int32', [DECODE_BATCH, DECODE_TOTAL]);
  const positionIds = g.input(I.positionIds, 'int32', [DECODE_BATCH, DECODE_NEW]);
  const { numHeads: H, headSize: d } = config;
  const pastShape = [DECODE_BATCH, H, DECODE_PAST, d];

  const bias = cachedCausalBias(attentionMask, inputIds, dtype);
  const rotary = rotaryTables(positionIds, config, dtype);
  const dropout = new NeoXDropout(g, config, undefined, false);
  let h = gather(P('gpt_neox.embed_in.weight'), inputIds, 0);
  for (let i = 0; i < config.numLayers; i++) {
    const pastKey = g.input(neoxPastKey(i), dtype, pastShape);
    const pastValue = g.input(neoxPastValue(i), dtype, pastShape);
    const cache = (k: Value, v: Value) => {
      const present = { k: concat([pastKey, k], 2), v: concat([pastValue, v], 2) };
      g.output(neoxPresentKey(i), present.k);
      g.output(neoxPresentValue(i), present.v);
      return present;
    };
    h = neoxLayer(h, (local) => P(`gpt_neox.layers.${i}.${local}`), config, bias, rotary, undefined, dropout, `layers.${i}.`, cache);
  }
  // Only the last new position is scored: the final norm and embed_out on [b, hidden].
  const last = sub(gather(shapeOf(inputIds), g.scalar(1, 'int64'), 0), g.scalar(1, 'int64'));
  const hLast = gather(h, last, 1);
  const logits = linear(layerNorm(hLast, P('gpt_neox.final_layer_norm.weight'), P('gpt_neox.final_layer_norm.bias'), config.layerNormEps), P('embed_out.weight'));
  g.output(DECODE_LOG_PROBS, logSoftmax(logits, -1));
  return { graph: g, params: specs };
}
