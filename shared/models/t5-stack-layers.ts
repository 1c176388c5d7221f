import { tokenLossSum } from './token-loss.js';
import type { FloatDType } from '../onnx/dtype.js';
import type { Value } from '../onnx/graph.js';
import {
  add, cast, equal, gather, gatherElements, logSoftmax, mul, neg, reduceSum, reshape, scalarLike, squeeze, sub, transpose, unsqueeze, where,
} from '../onnx/ops.js';
import type { T5Config } from './t5-config.js';
import { attention, feedForward, finfoMin, linear, rmsNorm, type DropoutSites, type LinearWeight, type LoraAdapter } from './t5-layers.js';

// One T5Block (HF T5Block) of each stack, and the additive attention biases, as functions of
// values: the whole-model graph (t5-graph.ts) and the block graphs (t5-block-graphs.ts) compose
// the same code, so the block engine differs from its oracle only in how the graph is cut.

/** A block's parameters by their name inside the block (`layer.0.SelfAttention.q.weight`). */
export type BlockParams = (local: string) => Value;

/** A block's LoRA adapters by module name inside the block (`layer.0.SelfAttention.q`); null: none. */
export type BlockAdapters = (localModule: string) => LoraAdapter | null;

const NO_ADAPTERS: BlockAdapters = () => null;

/** The block's Linear `module`, with its adapter if it has one; its lora_dropout site is `<site><module>.lora_dropout`. */
function linearWeight(P: BlockParams, A: BlockAdapters, module: string, site: string): LinearWeight {
  const weight = P(`${module}.weight`);
  const lora = A(module);
  return lora ? { weight, lora, site: `${site}${module}.lora_dropout` } : weight;
}

/** get_extended_attention_mask: (1 - mask) * finfo.min, as [batch, 1, 1, src_len]. */
export function keyMaskBias(attentionMask: Value, dtype: FloatDType): Value {
  const g = attentionMask.graph;
  return unsqueeze(mul(sub(g.scalar(1, dtype), cast(attentionMask, dtype)), g.scalar(finfoMin(dtype), dtype)), [1, 2]);
}

/** compute_bias: table[bucket] -> [q, k, heads] -> [1, heads, q, k]. */
export function positionBias(table: Value, buckets: Value): Value {
  return unsqueeze(transpose(gather(table, buckets, 0), [2, 0, 1]), [0]);
}

function attentionWeights(P: BlockParams, A: BlockAdapters, prefix: string, site: string) {
  const w = (name: string) => linearWeight(P, A, `${prefix}.${name}`, site);
  return { q: w('q'), k: w('k'), v: w('v'), o: w('o') };
}

function feedForwardWeights(P: BlockParams, A: BlockAdapters, prefix: string, config: T5Config, site: string) {
  const w = (name: string) => linearWeight(P, A, `${prefix}.DenseReluDense.${name}`, site);
  return config.gated ? { wi0: w('wi_0'), wi1: w('wi_1'), wo: w('wo') } : { wi0: w('wi'), wi1: null, wo: w('wo') };
}

/**
 * Encoder T5Block: self-attention then feed-forward, pre-norm residuals. `site` prefixes dropout
 * sites; `A` gives the LoRA adapters of its Linear layers (none by default).
 */
export function encoderBlock(h: Value, bias: Value, P: BlockParams, config: T5Config, dropout: DropoutSites, site: string, A: BlockAdapters = NO_ADAPTERS): Value {
  const { numHeads, dKv, layerNormEpsilon: eps } = config;
  const normed = rmsNorm(h, P('layer.0.layer_norm.weight'), eps);
  h = add(h, dropout.apply(attention(normed, normed, attentionWeights(P, A, 'layer.0.SelfAttention', site), bias, numHeads, dKv, dropout, `${site}self`), `${site}self.out`));
  const normed2 = rmsNorm(h, P('layer.1.layer_norm.weight'), eps);
  return add(h, dropout.apply(feedForward(normed2, feedForwardWeights(P, A, 'layer.1', config, site), config.activation, dropout, `${site}ff`), `${site}ff.out`));
}

/** Decoder T5Block: causal self-attention, cross-attention on the encoder output, feed-forward. */
export function decoderBlock(
  d: Value, encoderOut: Value, selfBias: Value, crossBias: Value, P: BlockParams, config: T5Config, dropout: DropoutSites, site: string,
  A: BlockAdapters = NO_ADAPTERS,
): Value {
  const { numHeads, dKv, layerNormEpsilon: eps } = config;
  const n0 = rmsNorm(d, P('layer.0.layer_norm.weight'), eps);
  d = add(d, dropout.apply(attention(n0, n0, attentionWeights(P, A, 'layer.0.SelfAttention', site), selfBias, numHeads, dKv, dropout, `${site}self`), `${site}self.out`));
  const n1 = rmsNorm(d, P('layer.1.layer_norm.weight'), eps);
  d = add(d, dropout.apply(attention(n1, encoderOut, attentionWeights(P, A, 'layer.1.EncDecAttention', site), crossBias, numHeads, dKv, dropout, `${site}cross`), `${site}cross.out`));
  const n2 = rmsNorm(d, P('layer.2.layer_norm.weight'), eps);
  return add(d, dropout.apply(feedForward(n2, feedForwardWeights(P, A, 'layer.2', config, site), config.activation, dropout, `${site}ff`), `${site}ff.out`));
}

/**
 * Decoder final norm, the LM head and the loss: a *sum* of token cross-entropies over labels that
 * are not -100, and their count. Tied embeddings rescale by d_model^-0.5 (HF does so only when tied).
 */
export function headAndLoss(d: Value, finalNorm: Value, head: Value, labels: Value, config: T5Config, dropout: DropoutSites, site: string) {
  const g = d.graph;
  const dtype = d.dtype as FloatDType;
  let sequence = dropout.apply(rmsNorm(d, finalNorm, config.layerNormEpsilon), `${site}final`);
  if (config.tieWordEmbeddings) sequence = mul(sequence, scalarLike(sequence, config.dModel ** -0.5));
  const logits = linear(sequence, head);
  return { ...tokenLossSum(logits, labels, config.vocabSize), logits };
}
