import { tokenLossSum } from './token-loss.js';
import { GraphBuildError } from '../errors.js';
import type { FloatDType } from '../onnx/dtype.js';
import type { Graph, Value } from '../onnx/graph.js';
import {
  add, cast, concat, cos, elementIndexLike, equal, erf, exp, gather, gatherElements, greaterOrEqual, less, logSoftmax, matmul, min, mul,
  neg, reciprocal, reduceMean, reduceSum, reshape, scalarLike, sin, slice, softmax, sqrt, squeeze, sub, transpose, unsqueeze, where,
} from '../onnx/ops.js';
import type { Dim } from '../onnx/shape.js';
import type { NeoXConfig } from './neox-config.js';
import { DropoutSites, finfoMin, linear, type DropoutSite } from './t5-layers.js';

// The pieces of GPTNeoXForCausalLM, built from primitive ops (autodiff needs no fused rules), each
// following Hugging Face's modeling_gpt_neox; the whole-model graph and the block graphs compose
// the same functions.

/** A layer's parameters by their name inside the layer (`attention.query_key_value.weight`, LoRA `....lora_A.weight`). */
export type LayerParams = (local: string) => Value;

/** LoRA on some Linear modules of every layer (PEFT semantics). */
export interface LoraOptions {
  readonly r: number;
  readonly alpha: number;
  /** Module names inside a layer whose name ends with one of these (PEFT target_modules), e.g. 'query_key_value'. */
  readonly targets: readonly string[];
  /** lora_dropout (default 0). */
  readonly dropout?: number;
  /** The factor on B·A·x; default alpha / r (use_rslora: alpha / sqrt(r)). */
  readonly scale?: number;
}

/** The Linear modules of a GPTNeoXLayer, by local name, with [out, in] given the config. */
export function neoxLinearModules(config: NeoXConfig): readonly { readonly module: string; readonly out: number; readonly in: number }[] {
  const h = config.hiddenSize;
  const f = config.intermediateSize;
  return [
    { module: 'attention.query_key_value', out: 3 * h, in: h },
    { module: 'attention.dense', out: h, in: h },
    { module: 'mlp.dense_h_to_4h', out: f, in: h },
    { module: 'mlp.dense_4h_to_h', out: h, in: f },
  ];
}

/** The layer modules LoRA adapts (a target matches a module whose name is it or ends with `.target`). */
export function loraModules(config: NeoXConfig, lora: LoraOptions | undefined): string[] {
  if (!lora) return [];
  if (!Number.isSafeInteger(lora.r) || lora.r < 1) throw new GraphBuildError(`LoRA r must be a positive integer, got ${lora.r}`);
  const modules = neoxLinearModules(config).map((m) => m.module).filter((m) => lora.targets.some((t) => m === t || m.endsWith(`.${t}`)));
  const unmatched = lora.targets.filter((t) => !modules.some((m) => m === t || m.endsWith(`.${t}`)));
  if (unmatched.length > 0) throw new GraphBuildError(`LoRA targets ${unmatched.join(', ')} match no Linear of a GPTNeoXLayer`);
  return modules;
}

/** The one rate of every GPT-NeoX dropout site (0: none); throws when the rates in use differ. */
/** The largest dropout rate in use (0: no dropout); each site carries its own rate (DropoutSite.rate). */
export function neoxDropoutRate(config: NeoXConfig, lora: LoraOptions | undefined): number {
  return Math.max(config.attentionDropout, config.hiddenDropout, lora?.dropout ?? 0);
}

/**
 * Dropout of a GPT-NeoX graph: attention probabilities (attention_dropout), the attention and MLP
 * outputs and the embeddings (hidden_dropout), and LoRA inputs (lora_dropout). Each site records its
 * own rate, at which the engines draw its masks; a site whose rate is 0 is no site at all.
 */
export class NeoXDropout {
  private readonly inner: DropoutSites;
  private readonly rates: Readonly<Record<'attention' | 'hidden' | 'lora', number>>;

  constructor(graph: Graph, config: NeoXConfig, lora: LoraOptions | undefined, enabled: boolean) {
    this.rates = enabled
      ? { attention: config.attentionDropout, hidden: config.hiddenDropout, lora: lora?.dropout ?? 0 }
      : { attention: 0, hidden: 0, lora: 0 };
    this.inner = new DropoutSites(graph, enabled ? neoxDropoutRate(config, lora) : 0);
  }

  get rate(): number {
    return this.inner.rate;
  }

  get sites(): readonly DropoutSite[] {
    return this.inner.sites;
  }

  apply(x: Value, name: string, kind: 'attention' | 'hidden' | 'lora'): Value {
    return this.rates[kind] > 0 ? this.inner.apply(x, name, this.rates[kind]) : x;
  }
}

/** nn.LayerNorm over the last dim: (x - mean) / sqrt(var + eps) * w + b, biased variance, in x's dtype. */
export function layerNorm(x: Value, weight: Value, bias: Value, eps: number): Value {
  const centred = sub(x, reduceMean(x, [-1], true));
  const variance = reduceMean(mul(centred, centred), [-1], true);
  return add(mul(weight, mul(centred, reciprocal(sqrt(add(variance, scalarLike(x, eps)))))), bias);
}

/**
 * erf(x). Float32 uses the Erf op. ORT's CPU provider has no float64 Erf kernel, so float64 (the
 * gradient checks) uses the series erf(x) = 2/sqrt(pi) x exp(-x^2) sum_n 2^n x^(2n) / (2n+1)!!, whose
 * terms are all positive (no cancellation), on x clamped to [-6, 6] (|erf| rounds to 1 beyond 5.9 in
 * float64). 140 terms reach a float64 ulp at |x| = 6 (the terms peak near n = 36). The polynomial is
 * evaluated in u = x^2 / 36, in [0, 1], so that every coefficient lies within float32's range:
 * with onnxruntime-node 1.30 at optimisation level 'all' (not 'basic'), the plain coefficients
 * 2^n / (2n+1)!!, below float32's range from n = 40 on, were lost and the sum came out short (erf(3)
 * off by 3e-13, |x| near 6 by far more); which optimiser does it was not pinned down.
 */
export function erfOf(x: Value): Value {
  if (x.dtype === 'float32') return erf(x);
  const c = (v: number) => scalarLike(x, v);
  const xc = where(less(x, c(-6)), c(-6), where(less(c(6), x), c(6), x));
  const x2 = mul(xc, xc);
  const u = mul(x2, c(1 / 36));
  const TERMS = 140;
  const coef: number[] = [1];
  for (let n = 1; n < TERMS; n++) coef.push((coef[n - 1]! * 72) / (2 * n + 1)); // 2^n 36^n / (2n+1)!!
  let s = c(coef[TERMS - 1]!);
  for (let n = TERMS - 2; n >= 0; n--) s = add(mul(s, u), c(coef[n]!));
  return mul(mul(c(2 / Math.sqrt(Math.PI)), xc), mul(exp(neg(x2)), s));
}

/** GELUActivation ('gelu'): 0.5 x (1 + erf(x / sqrt 2)), the exact form. */
export function gelu(x: Value): Value {
  return mul(mul(scalarLike(x, 0.5), x), add(scalarLike(x, 1), erfOf(mul(x, scalarLike(x, Math.SQRT1_2)))));
}

/** LoRA adapter of one Linear: A [r, in], B [out, r], scale alpha / r. */
export interface LoraAdapter {
  readonly a: Value;
  readonly b: Value;
  readonly scale: number;
  /** Dropout site name for the adapter's input. */
  readonly site: string;
}

/** nn.Linear with bias plus an optional LoRA: x W^T + b + (dropout(x) A^T B^T) * alpha / r (PEFT's lora.Linear). */
export function loraLinear(x: Value, weight: Value, bias: Value, adapter: LoraAdapter | null, dropout: NeoXDropout): Value {
  const y = add(linear(x, weight), bias);
  if (!adapter) return y;
  const delta = linear(linear(dropout.apply(x, adapter.site, 'lora'), adapter.a), adapter.b);
  return add(y, mul(delta, scalarLike(delta, adapter.scale)));
}

/** HF's inv_freq = 1 / base^(arange(0, dim, 2) / dim), for dim = rotary_ndims. */
export function inverseFrequencies(config: NeoXConfig): number[] {
  const dim = config.rotaryNdims;
  return Array.from({ length: dim / 2 }, (_, i) => 1 / config.rotaryBase ** ((2 * i) / dim));
}

/**
 * GPTNeoXRotaryEmbedding for `position_ids` [batch, seq]: freqs = pos * inv_freq, emb =
 * cat(freqs, freqs), as cos and sin [batch, 1, seq, rotary_ndims] (broadcast over heads).
 */
export function rotaryTables(positionIds: Value, config: NeoXConfig, dtype: FloatDType): { cos: Value; sin: Value } {
  const g = positionIds.graph;
  const inv = inverseFrequencies(config);
  const invFreq = g.constant(dtype === 'float32' ? Float32Array.from(inv) : Float64Array.from(inv), [inv.length]);
  const freqs = mul(unsqueeze(cast(positionIds, dtype), [2]), invFreq); // [b, s, dim/2]
  const emb = unsqueeze(concat([freqs, freqs], -1), [1]); // [b, 1, s, dim]
  return { cos: cos(emb), sin: sin(emb) };
}

/** apply_rotary_pos_emb on the first rotary_ndims dims of x [b, h, s, head]: x cos + rotate_half(x) sin; the rest passes. */
export function applyRotary(x: Value, tables: { cos: Value; sin: Value }, rotaryNdims: number): Value {
  if (rotaryNdims === 0) return x;
  const head = x.shape[3] as number;
  const rot = rotaryNdims === head ? x : slice(x, -1, 0, rotaryNdims);
  const half = rotaryNdims / 2;
  const rotated = concat([neg(slice(rot, -1, half, rotaryNdims)), slice(rot, -1, 0, half)], -1); // rotate_half: (x1, x2) -> (-x2, x1)
  const embedded = add(mul(rot, tables.cos), mul(rotated, tables.sin));
  return rotaryNdims === head ? embedded : concat([embedded, slice(x, -1, rotaryNdims, head)], -1);
}

/** Index 0..seq-1 of the second dim of `ids` [batch, seq], as int64 [seq]. */
function sequenceIndex(ids: Value): Value {
  return elementIndexLike(gather(ids, ids.graph.scalar(0, 'int64'), 0));
}

/**
 * The additive attention bias [batch, 1, seq, seq]: 0 where query q may see key k (k <= q and k is
 * not padding), finfo.min elsewhere, as HF's causal mask merged with the padding mask. Combined with
 * Min, not Add, so two masked terms stay finfo.min instead of overflowing to -inf.
 */
export function causalBias(attentionMask: Value, dtype: FloatDType): Value {
  const g = attentionMask.graph;
  const zero = g.scalar(0, dtype);
  const masked = g.scalar(finfoMin(dtype), dtype);
  const idx = sequenceIndex(attentionMask);
  const causal = where(greaterOrEqual(unsqueeze(idx, [1]), unsqueeze(idx, [0])), zero, masked); // [s, s]
  const keys = where(equal(attentionMask, g.scalar(0, 'int32')), masked, zero); // [b, s]
  return min(causal, unsqueeze(keys, [1, 2]));
}

/**
 * What a key/value cache does to one layer's new keys and values [b, heads, n, head] (after
 * rotary): prepend the past ones and record the whole as the present ones; returns the keys and
 * values attention then uses. Absent (training graphs): they are used as they are.
 */
export type KeyValueCache = (k: Value, v: Value) => { k: Value; v: Value };

/**
 * GPTNeoXAttention: fused qkv viewed as [b, s, heads, 3 * head] and split per head into q, k, v;
 * rotary on q and k; softmax(q k^T / sqrt(head) + bias) v; dense out. With `cache`, k and v are
 * extended by it first (decoding: `bias` is then [b, 1, s, past + s]).
 */
export function neoxAttention(
  x: Value, P: LayerParams, config: NeoXConfig, bias: Value, rotary: { cos: Value; sin: Value },
  adapters: (module: string) => LoraAdapter | null, dropout: NeoXDropout, site: string, cache?: KeyValueCache,
): Value {
  const [batch, seq] = x.shape as [Dim, Dim];
  const { numHeads: H, headSize: d } = config;
  const qkv = reshape(loraLinear(x, P('attention.query_key_value.weight'), P('attention.query_key_value.bias'), adapters('attention.query_key_value'), dropout), [batch, seq, H, 3 * d]);
  const part = (k: number) => transpose(slice(qkv, -1, k * d, (k + 1) * d), [0, 2, 1, 3]); // [b, h, s, d]
  const q = applyRotary(part(0), rotary, config.rotaryNdims);
  const newK = applyRotary(part(1), rotary, config.rotaryNdims);
  const { k, v } = cache ? cache(newK, part(2)) : { k: newK, v: part(2) };
  const scores = add(mul(matmul(q, transpose(k, [0, 1, 3, 2])), scalarLike(q, 1 / Math.sqrt(d))), bias);
  const probs = dropout.apply(softmax(scores, -1), `${site}attention.probs`, 'attention');
  const context = reshape(transpose(matmul(probs, v), [0, 2, 1, 3]), [batch, seq, H * d]);
  return loraLinear(context, P('attention.dense.weight'), P('attention.dense.bias'), adapters('attention.dense'), dropout);
}

/** GPTNeoXMLP: dense_4h_to_h(gelu(dense_h_to_4h(x))). */
export function neoxMlp(x: Value, P: LayerParams, adapters: (module: string) => LoraAdapter | null, dropout: NeoXDropout): Value {
  const h = gelu(loraLinear(x, P('mlp.dense_h_to_4h.weight'), P('mlp.dense_h_to_4h.bias'), adapters('mlp.dense_h_to_4h'), dropout));
  return loraLinear(h, P('mlp.dense_4h_to_h.weight'), P('mlp.dense_4h_to_h.bias'), adapters('mlp.dense_4h_to_h'), dropout);
}

/**
 * GPTNeoXLayer. Parallel residual: x + attn(ln1(x)) + mlp(ln2(x)); sequential: a = x + attn(ln1(x)),
 * a + mlp(ln2(a)). `site` prefixes dropout site names (empty in a block graph). LoRA adapters of the
 * targeted modules are the layer parameters `<module>.lora_A.weight` / `.lora_B.weight`.
 */
export function neoxLayer(
  x: Value, P: LayerParams, config: NeoXConfig, bias: Value, rotary: { cos: Value; sin: Value },
  lora: LoraOptions | undefined, dropout: NeoXDropout, site: string, cache?: KeyValueCache,
): Value {
  const targeted = new Set(loraModules(config, lora));
  const adapters = (module: string): LoraAdapter | null =>
    targeted.has(module)
      ? { a: P(`${module}.lora_A.weight`), b: P(`${module}.lora_B.weight`), scale: lora!.scale ?? lora!.alpha / lora!.r, site: `${site}${module}.lora` }
      : null;
  const eps = config.layerNormEps;
  const ln1 = layerNorm(x, P('input_layernorm.weight'), P('input_layernorm.bias'), eps);
  const attn = dropout.apply(neoxAttention(ln1, P, config, bias, rotary, adapters, dropout, site, cache), `${site}attention.out`, 'hidden');
  if (config.useParallelResidual) {
    const ln2 = layerNorm(x, P('post_attention_layernorm.weight'), P('post_attention_layernorm.bias'), eps);
    const mlp = dropout.apply(neoxMlp(ln2, P, adapters, dropout), `${site}mlp.out`, 'hidden');
    return add(add(mlp, attn), x);
  }
  const a = add(attn, x);
  const ln2 = layerNorm(a, P('post_attention_layernorm.weight'), P('post_attention_layernorm.bias'), eps);
  return add(dropout.apply(neoxMlp(ln2, P, adapters, dropout), `${site}mlp.out`, 'hidden'), a);
}

/** LoRA parameter inputs of one layer: local name and [rows, columns]. */
export function loraParamShapes(config: NeoXConfig, lora: LoraOptions | undefined): { local: string; shape: readonly number[] }[] {
  const byModule = new Map(neoxLinearModules(config).map((m) => [m.module, m]));
  return loraModules(config, lora).flatMap((module) => {
    const m = byModule.get(module)!;
    return [
      { local: `${module}.lora_A.weight`, shape: [lora!.r, m.in] },
      { local: `${module}.lora_B.weight`, shape: [m.out, lora!.r] },
    ];
  });
}

/**
 * Final LayerNorm, embed_out and the loss: a *sum* of token cross-entropies and the count of scored
 * tokens. HF's causal shift is done on the labels: logits at t score labels[t + 1] (the last
 * position scores nothing), -100 ignored.
 */
export function neoxHeadAndLoss(h: Value, norm: { weight: Value; bias: Value }, head: Value, labels: Value, config: NeoXConfig) {
  const g = h.graph;
  const dtype = h.dtype as FloatDType;
  const logits = linear(layerNorm(h, norm.weight, norm.bias, config.layerNormEps), head);
  const [batch, seq] = labels.shape as [Dim, Dim];
  const ignoreColumn = add(mul(slice(labels, 1, 0, 1), g.scalar(0, 'int32')), g.scalar(-100, 'int32')); // [b, 1] of -100
  const shifted = reshape(concat([slice(labels, 1, 1), ignoreColumn], 1), [batch, seq]);
  return { ...tokenLossSum(logits, shifted, config.vocabSize), logits };
}
