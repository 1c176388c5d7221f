import type { FloatDType } from '../onnx/dtype.js';
import { Graph, type Value } from '../onnx/graph.js';
import { add, cast, gather, mul, reshape, sub, transpose, unsqueeze } from '../onnx/ops.js';
import type { T5Config } from './t5-config.js';
import { attention, DropoutSites, feedForward, finfoMin, linear, rmsNorm, type AttentionWeights, type FeedForwardWeights } from './t5-layers.js';
import { t5ParamSpecs, type ParamSpec } from './t5-params.js';

// The encoder half of T5ForConditionalGeneration for generation: run once per batch, it returns
// what every decoder step needs from the source, namely each decoder layer's cross-attention keys
// and values (HF computes them on the first step and keeps them in the cache; computing them here
// keeps the step graph free of the encoder output). No dropout, no loss, no gradients.
// Parameters are graph inputs, as in the training graph, so the generator feeds views of the flat
// buffer; only the parameters the graph uses are declared.

export const ENC_BATCH = 'batch';
export const ENC_SRC_LEN = 'src_len';

export const T5_ENCODER_INPUTS = {
  inputIds: 'input_ids',
  attentionMask: 'attention_mask',
  positionBuckets: 'encoder_position_buckets',
} as const;

export const crossKeyName = (layer: number): string => `cross_key.${layer}`;
export const crossValueName = (layer: number): string => `cross_value.${layer}`;

/** A generation graph and the parameters it takes as inputs (a subset, in flat-buffer order). */
export interface T5PartGraph {
  readonly graph: Graph;
  readonly params: readonly ParamSpec[];
}

/** Declare the parameters `keep` selects as graph inputs; returns a lookup by HF name. */
export function declareT5Params(
  g: Graph,
  config: T5Config,
  dtype: FloatDType,
  keep: (name: string) => boolean,
): { readonly P: (name: string) => Value; readonly params: readonly ParamSpec[] } {
  const params = t5ParamSpecs(config).filter((s) => keep(s.name));
  const byName = new Map(params.map((s) => [s.name, g.input(s.name, dtype, s.shape)]));
  const P = (name: string): Value => {
    const v = byName.get(name);
    if (!v) throw new RangeError(`generation graph ${g.name}: parameter ${name} was not declared`);
    return v;
  };
  return { P, params };
}

export function attentionWeights(P: (name: string) => Value, prefix: string): AttentionWeights {
  return { q: P(`${prefix}.q.weight`), k: P(`${prefix}.k.weight`), v: P(`${prefix}.v.weight`), o: P(`${prefix}.o.weight`) };
}

export function feedForwardWeights(P: (name: string) => Value, config: T5Config, prefix: string): FeedForwardWeights {
  return config.gated
    ? { wi0: P(`${prefix}.DenseReluDense.wi_0.weight`), wi1: P(`${prefix}.DenseReluDense.wi_1.weight`), wo: P(`${prefix}.DenseReluDense.wo.weight`) }
    : { wi0: P(`${prefix}.DenseReluDense.wi.weight`), wi1: null, wo: P(`${prefix}.DenseReluDense.wo.weight`) };
}

/** get_extended_attention_mask: int32 [batch, src] -> (1 - mask) * finfo.min as [batch, 1, 1, src]. */
export function keyMaskBias(attentionMask: Value, dtype: FloatDType): Value {
  const g = attentionMask.graph;
  return unsqueeze(mul(sub(g.scalar(1, dtype), cast(attentionMask, dtype)), g.scalar(finfoMin(dtype), dtype)), [1, 2]);
}

/** compute_bias: table [buckets, heads] gathered by a [q, k] bucket table -> [heads, q, k]. */
export function relativePositionBias(table: Value, buckets: Value): Value {
  return transpose(gather(table, buckets, 0), [2, 0, 1]);
}

/** Is `name` a cross-attention key/value projection of a decoder layer (used only by the encoder graph)? */
export function isCrossKeyValueWeight(name: string): boolean {
  return /^decoder\.block\.\d+\.layer\.1\.EncDecAttention\.[kv]\.weight$/u.test(name);
}

export function buildT5EncoderGraph(config: T5Config, dtype: FloatDType = 'float32'): T5PartGraph {
  const g = new Graph('t5_encoder_for_generation');
  const { P, params } = declareT5Params(g, config, dtype, (n) => n === 'shared.weight' || n.startsWith('encoder.') || isCrossKeyValueWeight(n));
  const I = T5_ENCODER_INPUTS;
  const inputIds = g.input(I.inputIds, 'int32', [ENC_BATCH, ENC_SRC_LEN]);
  const attentionMask = g.input(I.attentionMask, 'int32', [ENC_BATCH, ENC_SRC_LEN]);
  const buckets = g.input(I.positionBuckets, 'int32', [ENC_SRC_LEN, ENC_SRC_LEN]);
  const noDropout = new DropoutSites(g, 0);
  const { numHeads, dKv, layerNormEpsilon: eps } = config;

  // The encoder exactly as buildT5Graph builds it (T5Stack, is_decoder = False), without dropout.
  const bias = add(unsqueeze(relativePositionBias(P('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'), buckets), [0]), keyMaskBias(attentionMask, dtype));
  let h = gather(P('shared.weight'), inputIds, 0);
  for (let i = 0; i < config.numEncoderLayers; i++) {
    const b = `encoder.block.${i}`;
    const normed = rmsNorm(h, P(`${b}.layer.0.layer_norm.weight`), eps);
    h = add(h, attention(normed, normed, attentionWeights(P, `${b}.layer.0.SelfAttention`), bias, numHeads, dKv, noDropout, `${b}.self`));
    const normed2 = rmsNorm(h, P(`${b}.layer.1.layer_norm.weight`), eps);
    h = add(h, feedForward(normed2, feedForwardWeights(P, config, `${b}.layer.1`), config.activation, noDropout, `${b}.ff`));
  }
  const encoderOut = rmsNorm(h, P('encoder.final_layer_norm.weight'), eps);

  // Each decoder layer's cross-attention keys and values, [batch, heads, src_len, d_kv] (HF layout).
  const heads = (x: Value) => transpose(reshape(x, [ENC_BATCH, ENC_SRC_LEN, numHeads, dKv]), [0, 2, 1, 3]);
  for (let i = 0; i < config.numDecoderLayers; i++) {
    const prefix = `decoder.block.${i}.layer.1.EncDecAttention`;
    g.output(crossKeyName(i), heads(linear(encoderOut, P(`${prefix}.k.weight`))));
    g.output(crossValueName(i), heads(linear(encoderOut, P(`${prefix}.v.weight`))));
  }
  return { graph: g, params };
}
