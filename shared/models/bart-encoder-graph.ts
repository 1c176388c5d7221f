import type { FloatDType } from '../onnx/dtype.js';
import { Graph, type Value } from '../onnx/graph.js';
import { reshape, transpose } from '../onnx/ops.js';
import type { BartConfig } from './bart-config.js';
import { bartEmbed, bartEncoderLayer, BartDropout, bartLinear, NO_ADAPTERS, sequencePositions, type LayerParams } from './bart-layers.js';
import { BART_SHARED, bartCheckpointSpecs, type BartStack } from './bart-params.js';
import { keyMaskBias } from './t5-stack-layers.js';
import type { ParamSpec } from './t5-params.js';

// The encoder half of BartForConditionalGeneration for generation, run once per batch: it returns
// what every decoder step needs from the source, each decoder layer's cross-attention keys and
// values (HF computes them at the first step and keeps them in its EncoderDecoderCache; computing
// them here keeps the step graph free of the encoder output). Built from bart-layers' functions
// without dropout; parameters are graph inputs fed as views of the flat buffer, whose layout for
// generation is bartCheckpointSpecs (the parameters, then the final_logits_bias buffer).

export const BART_ENC_BATCH = 'batch';
export const BART_ENC_SRC_LEN = 'src_len';

export const BART_ENCODER_INPUTS = {
  inputIds: 'input_ids',
  attentionMask: 'attention_mask',
} as const;

export const bartCrossKeyName = (layer: number): string => `cross_key.${layer}`;
export const bartCrossValueName = (layer: number): string => `cross_value.${layer}`;

/** A generation graph and the parameters it takes as inputs (a subset, in flat-buffer order). */
export interface BartPartGraph {
  readonly graph: Graph;
  readonly params: readonly ParamSpec[];
}

/** The flat layout of a BART model for generation: its parameters, then its buffer (final_logits_bias). */
export function bartGenerationSpecs(config: BartConfig): ParamSpec[] {
  return bartCheckpointSpecs(config);
}

/** Declare the tensors `keep` selects as graph inputs; returns a lookup by HF name. */
export function declareBartParams(
  g: Graph,
  config: BartConfig,
  dtype: FloatDType,
  keep: (name: string) => boolean,
): { readonly P: (name: string) => Value; readonly params: readonly ParamSpec[] } {
  const params = bartGenerationSpecs(config).filter((s) => keep(s.name));
  const byName = new Map(params.map((s) => [s.name, g.input(s.name, dtype, s.shape)]));
  const P = (name: string): Value => {
    const v = byName.get(name);
    if (!v) throw new RangeError(`generation graph ${g.name}: parameter ${name} was not declared`);
    return v;
  };
  return { P, params };
}

/** A stack's prelude parameters as bartEmbed reads them: `weight` is the shared token table. */
export function bartStackLookup(P: (name: string) => Value, stack: BartStack): LayerParams {
  return (local) => (local === 'weight' ? P(BART_SHARED) : P(`model.${stack}.${local}`));
}

export function bartLayerLookup(P: (name: string) => Value, stack: BartStack, layer: number): LayerParams {
  return (local) => P(`model.${stack}.layers.${layer}.${local}`);
}

/** Is `name` a decoder layer's cross-attention key/value projection (used by the encoder graph only)? */
export function isBartCrossKeyValue(name: string): boolean {
  return /^model\.decoder\.layers\.\d+\.encoder_attn\.[kv]_proj\.(weight|bias)$/u.test(name);
}

export function buildBartEncoderGraph(config: BartConfig, dtype: FloatDType = 'float32'): BartPartGraph {
  const g = new Graph('bart_encoder_for_generation');
  const { P, params } = declareBartParams(g, config, dtype, (n) => n === BART_SHARED || n.startsWith('model.encoder.') || isBartCrossKeyValue(n));
  const I = BART_ENCODER_INPUTS;
  const [B, SRC] = [BART_ENC_BATCH, BART_ENC_SRC_LEN];
  const inputIds = g.input(I.inputIds, 'int32', [B, SRC]);
  const attentionMask = g.input(I.attentionMask, 'int32', [B, SRC]);
  const dropout = new BartDropout(g, config, 0, false);

  // BartEncoder exactly as the training graph composes it, without dropout.
  const bias = keyMaskBias(attentionMask, dtype); // [batch, 1, 1, src]
  let h = bartEmbed(inputIds, sequencePositions(inputIds), bartStackLookup(P, 'encoder'), config, dropout, 'encoder.');
  for (let i = 0; i < config.encoderLayers; i++) h = bartEncoderLayer(h, bartLayerLookup(P, 'encoder', i), config, bias, NO_ADAPTERS, dropout, `encoder.${i}.`);

  // Each decoder layer's cross-attention keys and values, [batch, heads, src_len, head_dim] (HF's layout).
  const H = config.decoderHeads;
  const hd = config.dModel / H;
  const split = (x: Value) => transpose(reshape(x, [B, SRC, H, hd]), [0, 2, 1, 3]);
  for (let i = 0; i < config.decoderLayers; i++) {
    const Pl = bartLayerLookup(P, 'decoder', i);
    g.output(bartCrossKeyName(i), split(bartLinear(h, Pl, 'encoder_attn.k_proj', NO_ADAPTERS, dropout)));
    g.output(bartCrossValueName(i), split(bartLinear(h, Pl, 'encoder_attn.v_proj', NO_ADAPTERS, dropout)));
  }
  return { graph: g, params };
}
