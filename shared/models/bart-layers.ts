import type { FloatDType } from '../onnx/dtype.js';
import type { Graph, Value } from '../onnx/graph.js';
import { add, cast, elementIndexLike, gather, greaterOrEqual, matmul, mul, reshape, scalarLike, softmax, transpose, unsqueeze, where } from '../onnx/ops.js';
import type { Dim } from '../onnx/shape.js';
import { BART_POSITION_OFFSET, type BartConfig } from './bart-config.js';
import type { BartStack } from './bart-params.js';
import { gelu, layerNorm, type KeyValueCache } from './neox-layers.js';
import { tokenLossSum } from './token-loss.js';
import { DropoutSites, finfoMin, linear, type DropoutSite } from './t5-layers.js';

// The pieces of BartForConditionalGeneration, built from primitive ops (autodiff needs no fused
// rules), each following Hugging Face's modeling_bart: the training graph, its blocks and the
// decoding graphs compose these same functions. Post-LN throughout: every sublayer is
// LayerNorm(residual + dropout(sublayer(x))); the embeddings are normalised by layernorm_embedding.

/** A layer's (or a prelude's) parameters by their name inside it (`self_attn.q_proj.weight`). */
export type LayerParams = (local: string) => Value;

/** A LoRA adapter of one Linear (PEFT's lora.Linear): A [r, in], B [out, r], scale, its input's dropout site. */
export interface BartLoraAdapter {
  readonly a: Value;
  readonly b: Value;
  readonly scale: number;
  readonly site: string;
}

/** The adapter of a Linear module by its name inside the layer (`self_attn.q_proj`), or null. */
export type LayerAdapters = (module: string) => BartLoraAdapter | null;

export const NO_ADAPTERS: LayerAdapters = () => null;

export type BartDropoutKind = 'hidden' | 'attention' | 'activation' | 'lora';

/**
 * BART's three dropout rates (dropout on embeddings and sublayer outputs, attention_dropout on the
 * attention probabilities, activation_dropout after the feed-forward's activation) plus LoRA's.
 * Each site records its own rate; a kind whose rate is 0 makes no site. `enabled` false (eval,
 * gradient checks, decoding) makes none at all.
 */
export class BartDropout {
  private readonly inner: DropoutSites;
  private readonly rates: Readonly<Record<BartDropoutKind, number>>;

  constructor(graph: Graph, config: BartConfig, loraDropout: number, enabled: boolean) {
    this.rates = enabled
      ? { hidden: config.dropout, attention: config.attentionDropout, activation: config.activationDropout, lora: loraDropout }
      : { hidden: 0, attention: 0, activation: 0, lora: 0 };
    this.inner = new DropoutSites(graph, Math.max(...Object.values(this.rates)), enabled);
  }

  get sites(): readonly DropoutSite[] {
    return this.inner.sites;
  }

  apply(x: Value, name: string, kind: BartDropoutKind): Value {
    return this.rates[kind] > 0 ? this.inner.apply(x, name, this.rates[kind]) : x;
  }
}

/** The largest dropout rate a BART graph uses (ModelFamily.dropoutRate); 0: no dropout. */
export function bartDropoutRate(config: BartConfig, loraDropout: number): number {
  return Math.max(config.dropout, config.attentionDropout, config.activationDropout, loraDropout);
}

/** nn.Linear with bias, plus PEFT's LoRA term (dropout(x) A^T B^T * scale) when adapted. */
export function bartLinear(x: Value, P: LayerParams, module: string, A: LayerAdapters, dropout: BartDropout): Value {
  const y = add(linear(x, P(`${module}.weight`)), P(`${module}.bias`));
  const adapter = A(module);
  if (!adapter) return y;
  const delta = linear(linear(dropout.apply(x, adapter.site, 'lora'), adapter.a), adapter.b);
  return add(y, mul(delta, scalarLike(delta, adapter.scale)));
}

export function heads(config: BartConfig, stack: BartStack): number {
  return stack === 'encoder' ? config.encoderHeads : config.decoderHeads;
}

/**
 * BartAttention (`prefix` self_attn or encoder_attn): q = q_proj(x) * head_dim^-0.5, k and v from
 * `kv` (x itself for self-attention), softmax(q k^T + bias) with attention_dropout, out_proj. With
 * `cache` the new keys and values [b, heads, n, head_dim] go through it first and attention uses
 * what it returns (decoding: the past prepended; cross-attention: the encoder's, computed once).
 */
export function bartAttention(
  x: Value, kv: Value, P: LayerParams, prefix: string, numHeads: number, bias: Value,
  A: LayerAdapters, dropout: BartDropout, site: string, cache?: KeyValueCache,
): Value {
  const [batch, qLen] = x.shape as [Dim, Dim];
  const kLen = kv.shape[1]!;
  const d = x.shape[2] as number;
  const hd = d / numHeads;
  const split = (t: Value, len: Dim) => transpose(reshape(t, [batch, len, numHeads, hd]), [0, 2, 1, 3]); // [b, h, len, hd]
  const proj = (input: Value, name: string) => bartLinear(input, P, `${prefix}.${name}`, A, dropout);
  const q = split(mul(proj(x, 'q_proj'), scalarLike(x, hd ** -0.5)), qLen);
  const fresh = { k: split(proj(kv, 'k_proj'), kLen), v: split(proj(kv, 'v_proj'), kLen) };
  const { k, v } = cache ? cache(fresh.k, fresh.v) : fresh;
  const scores = add(matmul(q, transpose(k, [0, 1, 3, 2])), bias);
  const probs = dropout.apply(softmax(scores, -1), `${site}${prefix}.probs`, 'attention');
  const context = reshape(transpose(matmul(probs, v), [0, 2, 1, 3]), [batch, qLen, d]);
  return proj(context, 'out_proj');
}

/** One post-LN residual: LayerNorm(h + dropout(out)) with the norm `norm` of the layer. */
function residualNorm(h: Value, out: Value, P: LayerParams, norm: string, config: BartConfig, dropout: BartDropout, site: string): Value {
  const sum = add(h, dropout.apply(out, `${site}${norm}.in`, 'hidden'));
  return layerNorm(sum, P(`${norm}.weight`), P(`${norm}.bias`), config.layerNormEps);
}

/** Self-attention sublayer: self_attn_layer_norm(h + dropout(self_attn(h))). */
export function selfAttentionSublayer(
  h: Value, P: LayerParams, config: BartConfig, stack: BartStack, bias: Value, A: LayerAdapters, dropout: BartDropout, site: string, cache?: KeyValueCache,
): Value {
  const out = bartAttention(h, h, P, 'self_attn', heads(config, stack), bias, A, dropout, site, cache);
  return residualNorm(h, out, P, 'self_attn_layer_norm', config, dropout, site);
}

/** Cross-attention sublayer (decoder): encoder_attn_layer_norm(h + dropout(encoder_attn(h, encoderOut))). */
export function crossAttentionSublayer(
  h: Value, encoderOut: Value, P: LayerParams, config: BartConfig, bias: Value, A: LayerAdapters, dropout: BartDropout, site: string, cache?: KeyValueCache,
): Value {
  const out = bartAttention(h, encoderOut, P, 'encoder_attn', config.decoderHeads, bias, A, dropout, site, cache);
  return residualNorm(h, out, P, 'encoder_attn_layer_norm', config, dropout, site);
}

/** Feed-forward sublayer: final_layer_norm(h + dropout(fc2(activation_dropout(gelu(fc1(h)))))). */
export function feedForwardSublayer(h: Value, P: LayerParams, config: BartConfig, A: LayerAdapters, dropout: BartDropout, site: string): Value {
  const inner = dropout.apply(gelu(bartLinear(h, P, 'fc1', A, dropout)), `${site}fc1.out`, 'activation');
  return residualNorm(h, bartLinear(inner, P, 'fc2', A, dropout), P, 'final_layer_norm', config, dropout, site);
}

/** BartEncoderLayer. `bias`: the key-padding bias [b, 1, 1, src]; `site` prefixes dropout site names. */
export function bartEncoderLayer(h: Value, P: LayerParams, config: BartConfig, bias: Value, A: LayerAdapters, dropout: BartDropout, site: string): Value {
  return feedForwardSublayer(selfAttentionSublayer(h, P, config, 'encoder', bias, A, dropout, site), P, config, A, dropout, site);
}

/** BartDecoderLayer: causal self-attention (`selfBias`), cross-attention on the encoder output (`crossBias`), feed-forward. */
export function bartDecoderLayer(
  h: Value, encoderOut: Value, P: LayerParams, config: BartConfig, selfBias: Value, crossBias: Value, A: LayerAdapters, dropout: BartDropout, site: string,
): Value {
  const s = selfAttentionSublayer(h, P, config, 'decoder', selfBias, A, dropout, site);
  return feedForwardSublayer(crossAttentionSublayer(s, encoderOut, P, config, crossBias, A, dropout, site), P, config, A, dropout, site);
}

/**
 * A stack's embedding prelude: layernorm_embedding(embed_tokens(ids) * embed_scale +
 * embed_positions(positions + 2)), then dropout. `positions` (int32 or int64, broadcastable against
 * ids, e.g. [seq] or [b, seq]) are the token positions before HF's offset of 2, which is added
 * here. `P` reads `weight` (the token table), `embed_positions.weight`, `layernorm_embedding.*`.
 *
 * nn.Embedding's padding_idx also keeps the pad row's gradient at zero. With right-padded rows (the
 * data pipeline's layout: labels padded with -100, so decoder inputs pad only after the last scored
 * position) every padded position's output reaches no scored loss, so its gradient is exactly zero
 * anyway; a batch that scores labels after a pad token (labels holding pad ids, not -100) would
 * differ from HF there, in the pad row of model.shared only.
 */
export function bartEmbed(ids: Value, positions: Value, P: LayerParams, config: BartConfig, dropout: BartDropout, site: string): Value {
  const tokens = gather(P('weight'), ids, 0);
  const scaled = config.embedScale === 1 ? tokens : mul(tokens, scalarLike(tokens, config.embedScale));
  const rows = cast(add(positions, positions.graph.scalar(BART_POSITION_OFFSET, positions.dtype)), 'int32');
  const h = add(scaled, gather(P('embed_positions.weight'), rows, 0));
  const normed = layerNorm(h, P('layernorm_embedding.weight'), P('layernorm_embedding.bias'), config.layerNormEps);
  return dropout.apply(normed, `${site}embed`, 'hidden');
}

/** Positions 0..len-1 of `ids` [batch, len] as int64 [len]: training and a whole-prompt pass (no past). */
export function sequencePositions(ids: Value): Value {
  return elementIndexLike(gather(ids, ids.graph.scalar(0, 'int64'), 0));
}

/** The decoder's causal bias [len, len] from `ids` [batch, len]: 0 where key k <= query q, finfo.min after. */
export function causalMaskBias(ids: Value, dtype: FloatDType): Value {
  const g = ids.graph;
  const idx = sequencePositions(ids);
  return where(greaterOrEqual(unsqueeze(idx, [1]), unsqueeze(idx, [0])), g.scalar(0, dtype), g.scalar(finfoMin(dtype), dtype));
}

/** The LM head: h lm_head^T (the tied model.shared for BART) + final_logits_bias [1, vocab]. */
export function bartLmHead(h: Value, head: Value, logitsBias: Value): Value {
  return add(linear(h, head), logitsBias);
}

/** The head with the loss: the *sum* of token cross-entropies (labels -100 ignored) and their count. */
export function bartHeadAndLoss(h: Value, head: Value, logitsBias: Value, labels: Value, config: BartConfig) {
  const logits = bartLmHead(h, head, logitsBias);
  return { ...tokenLossSum(logits, labels, config.vocabSize), logits };
}
