import { gradientParts, gradients } from '../autodiff/backward.js';
import type { FloatDType } from '../onnx/dtype.js';
import { Graph, type Value } from '../onnx/graph.js';
import {
  add, cast, equal, gather, gatherElements, logSoftmax, mul, neg, reduceSum, reshape, scalarLike, squeeze, sub,
  transpose, unsqueeze, where,
} from '../onnx/ops.js';
import type { T5Config } from './t5-config.js';
import { attention, DropoutSites, feedForward, finfoMin, linear, rmsNorm, type DropoutSite } from './t5-layers.js';
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
}

export interface T5Graph {
  readonly graph: Graph;
  readonly params: readonly ParamSpec[];
  readonly dropoutSites: readonly DropoutSite[];
  /** The gradient outputs of each parameter, in parameter order (empty without gradients). */
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
  const dropout = new DropoutSites(g, options.dropout ? config.dropoutRate : 0);
  const I = T5_DATA_INPUTS;

  const inputIds = g.input(I.inputIds, 'int32', [BATCH, SRC_LEN]);
  const attentionMask = g.input(I.attentionMask, 'int32', [BATCH, SRC_LEN]);
  const decoderInputIds = g.input(I.decoderInputIds, 'int32', [BATCH, TGT_LEN]);
  const labels = g.input(I.labels, 'int32', [BATCH, TGT_LEN]);
  const encBuckets = g.input(I.encoderBuckets, 'int32', [SRC_LEN, SRC_LEN]);
  const decBuckets = g.input(I.decoderBuckets, 'int32', [TGT_LEN, TGT_LEN]);
  const causal = g.input(I.decoderCausalMask, dtype, [TGT_LEN, TGT_LEN]);

  // get_extended_attention_mask: (1 - mask) * finfo.min, as [batch, 1, 1, src_len].
  const keyMask = unsqueeze(mul(sub(g.scalar(1, dtype), cast(attentionMask, dtype)), g.scalar(finfoMin(dtype), dtype)), [1, 2]);
  // compute_bias: table[bucket] -> [q, k, heads] -> [1, heads, q, k]; computed once per stack.
  const positionBias = (table: Value, buckets: Value) => unsqueeze(transpose(gather(table, buckets, 0), [2, 0, 1]), [0]);

  const { dModel, numHeads, dKv, layerNormEpsilon: eps } = config;
  const attn = (prefix: string) => ({ q: P(`${prefix}.q.weight`), k: P(`${prefix}.k.weight`), v: P(`${prefix}.v.weight`), o: P(`${prefix}.o.weight`) });
  const ff = (prefix: string) =>
    config.gated
      ? { wi0: P(`${prefix}.DenseReluDense.wi_0.weight`), wi1: P(`${prefix}.DenseReluDense.wi_1.weight`), wo: P(`${prefix}.DenseReluDense.wo.weight`) }
      : { wi0: P(`${prefix}.DenseReluDense.wi.weight`), wi1: null, wo: P(`${prefix}.DenseReluDense.wo.weight`) };

  // ---- encoder (T5Stack, is_decoder = False)
  const encBias = add(positionBias(P('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'), encBuckets), keyMask);
  let h = dropout.apply(gather(P('shared.weight'), inputIds, 0), 'encoder.embed');
  for (let i = 0; i < config.numEncoderLayers; i++) {
    const b = `encoder.block.${i}`;
    const normed = rmsNorm(h, P(`${b}.layer.0.layer_norm.weight`), eps);
    h = add(h, dropout.apply(attention(normed, normed, attn(`${b}.layer.0.SelfAttention`), encBias, numHeads, dKv, dropout, `${b}.self`), `${b}.self.out`));
    const normed2 = rmsNorm(h, P(`${b}.layer.1.layer_norm.weight`), eps);
    h = add(h, dropout.apply(feedForward(normed2, ff(`${b}.layer.1`), config.activation, dropout, `${b}.ff`), `${b}.ff.out`));
  }
  const encoderOut = dropout.apply(rmsNorm(h, P('encoder.final_layer_norm.weight'), eps), 'encoder.final');

  // ---- decoder (T5Stack, is_decoder = True): causal self-attention, then cross-attention.
  const selfBias = add(positionBias(P('decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'), decBuckets), causal);
  let d = dropout.apply(gather(P('shared.weight'), decoderInputIds, 0), 'decoder.embed');
  for (let i = 0; i < config.numDecoderLayers; i++) {
    const b = `decoder.block.${i}`;
    const n0 = rmsNorm(d, P(`${b}.layer.0.layer_norm.weight`), eps);
    d = add(d, dropout.apply(attention(n0, n0, attn(`${b}.layer.0.SelfAttention`), selfBias, numHeads, dKv, dropout, `${b}.self`), `${b}.self.out`));
    const n1 = rmsNorm(d, P(`${b}.layer.1.layer_norm.weight`), eps);
    d = add(d, dropout.apply(attention(n1, encoderOut, attn(`${b}.layer.1.EncDecAttention`), keyMask, numHeads, dKv, dropout, `${b}.cross`), `${b}.cross.out`));
    const n2 = rmsNorm(d, P(`${b}.layer.2.layer_norm.weight`), eps);
    d = add(d, dropout.apply(feedForward(n2, ff(`${b}.layer.2`), config.activation, dropout, `${b}.ff`), `${b}.ff.out`));
  }
  let sequence = dropout.apply(rmsNorm(d, P('decoder.final_layer_norm.weight'), eps), 'decoder.final');

  // ---- head and loss. Tied embeddings rescale by d_model^-0.5 (HF does so only when tied).
  if (config.tieWordEmbeddings) sequence = mul(sequence, scalarLike(sequence, dModel ** -0.5));
  const logits = linear(sequence, config.tieWordEmbeddings ? P('shared.weight') : P('lm_head.weight'));

  const rows = `${BATCH}*${TGT_LEN}`;
  const logProbs = logSoftmax(reshape(logits, [rows, config.vocabSize]), -1);
  const flatLabels = reshape(labels, [rows]);
  const ignored = equal(flatLabels, g.scalar(-100, 'int32'));
  const safeLabels = where(ignored, g.scalar(0, 'int32'), flatLabels);
  const valid = where(ignored, g.scalar(0, dtype), g.scalar(1, dtype));
  const picked = squeeze(gatherElements(logProbs, unsqueeze(safeLabels, [1]), 1), [1]);
  const lossSum = neg(reduceSum(mul(picked, valid), [0], false));
  const tokenCount = reduceSum(valid, [0], false);

  g.output('loss_sum', lossSum);
  g.output('token_count', tokenCount);
  if (options.logits) g.output('logits', logits);

  const gradientOutputs: ParamGradientOutputs[] = [];
  const wrt = specs.map((s) => P(s.name));
  if (options.gradients === 'dense') {
    const grads = gradients([{ value: lossSum }], wrt);
    specs.forEach((s, i) => {
      g.output(`grad.${s.name}`, grads[i]!);
      gradientOutputs.push({ dense: `grad.${s.name}`, rows: [] });
    });
  } else if (options.gradients === 'rows') {
    gradientParts([{ value: lossSum }], wrt).forEach((part, i) => {
      const name = specs[i]!.name;
      if (part.dense) g.output(`grad.${name}`, part.dense);
      const rows = part.rows.map((r, k) => {
        g.output(`rows.${name}.${k}`, r.rows);
        g.output(`row_indices.${name}.${k}`, r.indices);
        return { indices: `row_indices.${name}.${k}`, rows: `rows.${name}.${k}` };
      });
      gradientOutputs.push({ dense: part.dense ? `grad.${name}` : null, rows });
    });
  }
  return { graph: g, params: specs, dropoutSites: dropout.sites, gradientOutputs };
}
