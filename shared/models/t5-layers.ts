import type { FloatDType } from '../onnx/dtype.js';
import { Value, type Graph } from '../onnx/graph.js';
import {
  add, matmul, mul, reciprocal, reduceMean, reshape, scalarLike, softmax, sqrt, tanh, relu, transpose, where,
} from '../onnx/ops.js';
import type { Dim } from '../onnx/shape.js';

// The pieces of T5 v1.1, built from primitive ops (so autodiff needs no fused rules), each
// matching Hugging Face's modeling_t5 line for line; see the comments for the HF module.

/** A dropout site: the graph takes a keep-mask input of the activation's shape (see DropoutSites). */
export interface DropoutSite {
  readonly input: string;
  readonly shape: readonly Dim[];
  /** Set where the site has a rate of its own (LoRA's lora_dropout): its masks must be drawn at it. */
  readonly rate?: number;
}

/**
 * Dropout with masks fed from outside. The engine derives each mask from (seed, step, sample
 * index, site, row), never from a per-process RNG, so any number of workers and any batch
 * composition see the same masks for the same sample (the result equals one big batch).
 */
export class DropoutSites {
  readonly sites: DropoutSite[] = [];
  constructor(
    private readonly graph: Graph,
    readonly rate: number,
    /** Whether dropout applies at all (training); by default, when the model's rate is positive. */
    private readonly enabled = rate > 0,
  ) {}

  /** Dropout at the model's rate, or at `rate` for a site with a rate of its own (recorded on the site). */
  apply(x: Value, name: string, rate?: number): Value {
    const p = rate ?? this.rate;
    if (!this.enabled || p <= 0) return x;
    const input = `dropout.${name}`;
    const mask = this.graph.input(input, 'bool', x.shape);
    this.sites.push(rate === undefined ? { input, shape: x.shape } : { input, shape: x.shape, rate });
    // Inverted dropout, as torch: kept activations are scaled by 1/(1-p). As Where on the bool mask
    // (not x * float(mask)): the backward then reads the fed 1-byte mask instead of keeping a float
    // copy of it alive from the forward (bench/engine: saved activations). The same function; float
    // rounding may differ from x * float(mask) * scale where ORT folded that scale into a GEMM.
    return where(mask, mul(x, scalarLike(x, 1 / (1 - p))), scalarLike(x, 0));
  }
}

/** nn.Linear without bias: x @ W^T, W stored [out, in] as PyTorch does. ORT fuses the Transpose. */
export function linear(x: Value, weight: Value): Value {
  return matmul(x, transpose(weight, [1, 0]));
}

/** A LoRA adapter of one Linear (see [Note: LoRA] in lora.ts): A [r, in], B [out, r]. */
export interface LoraAdapter {
  readonly a: Value;
  readonly b: Value;
  /** lora_alpha / r */
  readonly scale: number;
  /** lora_dropout (applied to the adapter's input only). */
  readonly dropout: number;
}

/** A Linear's weight [out, in], either alone or with a LoRA adapter and its dropout site name. */
export type LinearWeight = Value | { readonly weight: Value; readonly lora: LoraAdapter; readonly site: string };

/** PEFT's lora.Linear forward: x W^T + (dropout(x) A^T) B^T * scale; a plain Linear without an adapter. */
export function adaptedLinear(x: Value, w: LinearWeight, dropout: DropoutSites): Value {
  if (w instanceof Value) return linear(x, w);
  const { a, b, scale, dropout: rate } = w.lora;
  const update = linear(linear(dropout.apply(x, w.site, rate), a), b);
  return add(linear(x, w.weight), mul(update, scalarLike(update, scale)));
}

/** T5LayerNorm: RMS norm without mean subtraction or bias, variance in float32 (or float64). */
export function rmsNorm(x: Value, weight: Value, eps: number): Value {
  const variance = reduceMean(mul(x, x), [-1], true);
  return mul(weight, mul(x, reciprocal(sqrt(add(variance, scalarLike(x, eps))))));
}

/** gelu_new (NewGELUActivation): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function geluNew(x: Value): Value {
  const inner = mul(scalarLike(x, Math.sqrt(2 / Math.PI)), add(x, mul(scalarLike(x, 0.044715), mul(x, mul(x, x)))));
  return mul(mul(scalarLike(x, 0.5), x), add(scalarLike(x, 1), tanh(inner)));
}

/** The four projections; `W = LinearWeight` where some may carry LoRA adapters. */
export interface AttentionWeights<W extends LinearWeight = Value> {
  readonly q: W;
  readonly k: W;
  readonly v: W;
  readonly o: W;
}

/**
 * T5Attention: no 1/sqrt(d) scaling (folded into the init), additive bias (position bias plus
 * mask) shared across the stack's layers, softmax in the compute dtype, dropout on the weights.
 * `x` is [batch, q_len, d_model]; `kv` is the key/value source (x itself for self-attention).
 */
export function attention(
  x: Value,
  kv: Value,
  w: AttentionWeights<LinearWeight>,
  bias: Value,
  numHeads: number,
  dKv: number,
  dropout: DropoutSites,
  site: string,
): Value {
  const [batch, qLen] = x.shape as [Dim, Dim];
  const kLen = kv.shape[1]!;
  const heads = (t: Value, len: Dim) => reshape(t, [batch, len, numHeads, dKv]);
  const q = transpose(heads(adaptedLinear(x, w.q, dropout), qLen), [0, 2, 1, 3]); // [b, h, q, d]
  const kT = transpose(heads(adaptedLinear(kv, w.k, dropout), kLen), [0, 2, 3, 1]); // [b, h, d, k]
  const v = transpose(heads(adaptedLinear(kv, w.v, dropout), kLen), [0, 2, 1, 3]); // [b, h, k, d]
  const scores = add(matmul(q, kT), bias);
  const probs = dropout.apply(softmax(scores, -1), `${site}.probs`);
  const context = transpose(matmul(probs, v), [0, 2, 1, 3]); // [b, q, h, d]
  return adaptedLinear(reshape(context, [batch, qLen, numHeads * dKv]), w.o, dropout);
}

export interface FeedForwardWeights<W extends LinearWeight = Value> {
  /** wi (relu) or wi_0 (gated). */
  readonly wi0: W;
  /** wi_1, gated variants only. */
  readonly wi1: W | null;
  readonly wo: W;
}

/** T5DenseActDense / T5DenseGatedActDense. */
export function feedForward(x: Value, w: FeedForwardWeights<LinearWeight>, activation: 'relu' | 'gelu_new', dropout: DropoutSites, site: string): Value {
  const act = activation === 'relu' ? relu : geluNew;
  let h = act(adaptedLinear(x, w.wi0, dropout));
  if (w.wi1) h = mul(h, adaptedLinear(x, w.wi1, dropout));
  return adaptedLinear(dropout.apply(h, `${site}.hidden`), w.wo, dropout);
}

/** The most negative finite value of the dtype, as HF's `torch.finfo(dtype).min` mask value. */
export function finfoMin(dtype: FloatDType): number {
  return dtype === 'float32' ? -3.4028234663852886e38 : -Number.MAX_VALUE;
}
