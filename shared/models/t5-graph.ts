import { gradientParts, gradients } from '../autodiff/backward.js';
import { GraphBuildError } from '../errors.js';
import type { FloatDType } from '../onnx/dtype.js';
import { Graph, type Value } from '../onnx/graph.js';
import { add, gather } from '../onnx/ops.js';
import type { T5Config } from './t5-config.js';
import { loraAdapters, loraParamSpecs, type LoraParamSpec, type LoraSettings } from './lora.js';
import { DropoutSites, rmsNorm, type DropoutSite, type LoraAdapter } from './t5-layers.js';
import { decoderBlock, encoderBlock, headAndLoss, keyMaskBias, positionBias } from './t5-stack-layers.js';
import { t5ParamSpecs, type ParamSpec } from './t5-params.js';

// T5ForConditionalGeneration as one ONNX graph: parameters are graph inputs (the worker owns them
// in a flat buffer), the loss is a *sum* of token cross-entropies plus the token count (the
// coordinator divides by the global count), and the backward pass is appended by autodiff.

export const BATCH = 'batch';
export const SRC_LEN = 'src_len';
export const TGT_LEN = 'tgt_len';

export interface T5GraphOptions {
  readonly dtype: FloatDType;
  /** Apply config.dropoutRate with fed masks (training); false for eval and gradient checks. */
  readonly dropout: boolean;
  /**
   * Append gradient outputs for every parameter: 'rows' (training) leaves embedding and
   * position-bias lookups as row gradients for the engine to add into its flat gradient; 'dense'
   * outputs one dense `grad.<param name>` per parameter (rows scattered into a zero table in the
   * graph, the first release's formulation, kept as a reference); false for none.
   */
  readonly gradients: 'rows' | 'dense' | false;
  /** Also output `logits` [batch, tgt_len, vocab]. */
  readonly logits?: boolean;
  /**
   * LoRA adapters ([Note: LoRA]) on the targeted Linear layers of the blocks: inputs named as PEFT
   * saves them, a lora_dropout site per adapted module (at settings.dropout), and gradients (if any)
   * for the adapters only; the base weights stay inputs, frozen.
   */
  readonly lora?: LoraSettings;
}

export interface T5Graph {
  readonly graph: Graph;
  /** The base model's parameters (inputs): trainable without LoRA, frozen with it. */
  readonly params: readonly ParamSpec[];
  /** The LoRA adapters (inputs, the trainable parameters with LoRA); empty without LoRA. */
  readonly adapters: readonly LoraParamSpec[];
  readonly dropoutSites: readonly DropoutSite[];
  /**
   * The gradient outputs of each trainable parameter (`adapters` with LoRA, else `params`), in
   * that order (empty without gradients).
   */
  readonly gradientOutputs: readonly ParamGradientOutputs[];
}

/**
 * Where one parameter's gradient comes out: a dense output (null: none, the engine starts from
 * zeros) plus row gradients to add to it (`rows` [n, columns] at row `indices` [n]).
 */
export interface ParamGradientOutputs {
  readonly dense: string | null;
  readonly rows: readonly { readonly indices: string; readonly rows: string }[];
}

/** Graph inputs besides parameters and dropout masks (fed by the engine, see t5-feeds.ts). */
export const T5_DATA_INPUTS = {
  inputIds: 'input_ids',
  attentionMask: 'attention_mask',
  decoderInputIds: 'decoder_input_ids',
  labels: 'labels',
  encoderBuckets: 'encoder_position_buckets',
  decoderBuckets: 'decoder_position_buckets',
  decoderCausalMask: 'decoder_causal_mask',
} as const;

export function buildT5Graph(config: T5Config, options: T5GraphOptions): T5Graph {
  const g = new Graph('t5_for_conditional_generation');
  const { dtype } = options;
  const specs = t5ParamSpecs(config);
  const p = new Map<string, Value>(specs.map((s) => [s.name, g.input(s.name, dtype, s.shape)]));
  const P = (name: string): Value => p.get(name)!;
  const adapterSpecs = options.lora ? loraParamSpecs(specs, options.lora, 't5') : [];
  const adapterValues = new Map(adapterSpecs.map((s) => [s.name, g.input(s.name, dtype, s.shape)]));
  const adapters: ReadonlyMap<string, LoraAdapter> = options.lora ? loraAdapters(adapterSpecs, options.lora, (s) => adapterValues.get(s.name)!) : new Map();
  const adapted = new Set<string>();
  const adaptersIn = (prefix: string) => (local: string) => {
    const a = adapters.get(`${prefix}.${local}`);
    if (a) adapted.add(`${prefix}.${local}`);
    return a ?? null;
  };
  const dropout = new DropoutSites(g, options.dropout ? config.dropoutRate : 0, options.dropout);
  const I = T5_DATA_INPUTS;

  const inputIds = g.input(I.inputIds, 'int32', [BATCH, SRC_LEN]);
  const attentionMask = g.input(I.attentionMask, 'int32', [BATCH, SRC_LEN]);
  const decoderInputIds = g.input(I.decoderInputIds, 'int32', [BATCH, TGT_LEN]);
  const labels = g.input(I.labels, 'int32', [BATCH, TGT_LEN]);
  const encBuckets = g.input(I.encoderBuckets, 'int32', [SRC_LEN, SRC_LEN]);
  const decBuckets = g.input(I.decoderBuckets, 'int32', [TGT_LEN, TGT_LEN]);
  const causal = g.input(I.decoderCausalMask, dtype, [TGT_LEN, TGT_LEN]);

  const keyMask = keyMaskBias(attentionMask, dtype);
  const inBlock = (prefix: string) => (local: string) => P(`${prefix}.${local}`);

  // ---- encoder (T5Stack, is_decoder = False); the position bias is computed once per stack.
  const encBias = add(positionBias(P('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'), encBuckets), keyMask);
  let h = dropout.apply(gather(P('shared.weight'), inputIds, 0), 'encoder.embed');
  for (let i = 0; i < config.numEncoderLayers; i++) {
    h = encoderBlock(h, encBias, inBlock(`encoder.block.${i}`), config, dropout, `encoder.block.${i}.`, adaptersIn(`encoder.block.${i}`));
  }
  const encoderOut = dropout.apply(rmsNorm(h, P('encoder.final_layer_norm.weight'), config.layerNormEpsilon), 'encoder.final');

  // ---- decoder (T5Stack, is_decoder = True): causal self-attention, then cross-attention.
  const selfBias = add(positionBias(P('decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'), decBuckets), causal);
  let d = dropout.apply(gather(P('shared.weight'), decoderInputIds, 0), 'decoder.embed');
  for (let i = 0; i < config.numDecoderLayers; i++) {
    d = decoderBlock(d, encoderOut, selfBias, keyMask, inBlock(`decoder.block.${i}`), config, dropout, `decoder.block.${i}.`, adaptersIn(`decoder.block.${i}`));
  }
  const unused = [...adapters.keys()].filter((m) => !adapted.has(m));
  if (unused.length > 0) throw new GraphBuildError(`T5 graph: LoRA on ${unused.join(', ')} is not supported (only Linear layers inside encoder/decoder blocks)`);

  // ---- head and loss
  const head = config.tieWordEmbeddings ? P('shared.weight') : P('lm_head.weight');
  const { lossSum, tokenCount, logits } = headAndLoss(d, P('decoder.final_layer_norm.weight'), head, labels, config, dropout, 'decoder.');

  g.output('loss_sum', lossSum);
  g.output('token_count', tokenCount);
  if (options.logits) g.output('logits', logits);

  const gradientOutputs: ParamGradientOutputs[] = [];
  const trainable: readonly { readonly name: string }[] = options.lora ? adapterSpecs : specs;
  const wrt = options.lora ? adapterSpecs.map((s) => adapterValues.get(s.name)!) : specs.map((s) => P(s.name));
  if (options.gradients === 'dense') {
    const grads = gradients([{ value: lossSum }], wrt);
    trainable.forEach((s, i) => {
      g.output(`grad.${s.name}`, grads[i]!);
      gradientOutputs.push({ dense: `grad.${s.name}`, rows: [] });
    });
  } else if (options.gradients === 'rows') {
    gradientParts([{ value: lossSum }], wrt).forEach((part, i) => {
      const name = trainable[i]!.name;
      if (part.dense) g.output(`grad.${name}`, part.dense);
      const rows = part.rows.map((r, k) => {
        g.output(`rows.${name}.${k}`, r.rows);
        g.output(`row_indices.${name}.${k}`, r.indices);
        return { indices: `row_indices.${name}.${k}`, rows: `rows.${name}.${k}` };
      });
      gradientOutputs.push({ dense: part.dense ? `grad.${name}` : null, rows });
    });
  }
  return { graph: g, params: specs, adapters: adapterSpecs, dropoutSites: dropout.sites, gradientOutputs };
}
