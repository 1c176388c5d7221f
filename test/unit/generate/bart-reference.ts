// An independent float64 BartForConditionalGeneration forward in plain JS, written from HF's
// modeling_bart (not from kp-coord's layer functions), for the BART decoding tests: one item at a
// time and without padding (a padded key is masked with finfo.min, exp of which is exactly 0, so an
// unpadded item is what a padded batch must reproduce). Weights are read by their HF names.
//
//   embed: embed_tokens(ids) * (sqrt(d_model) if scale_embedding else 1) + embed_positions(pos + 2),
//          then layernorm_embedding;
//   encoder layer: h = LN(h + self_attn(h)); h = LN(h + fc2(act(fc1(h))));
//   decoder layer: h = LN(h + causal self_attn(h)); h = LN(h + encoder_attn(h, enc)); then the FFN;
//   attention: q = q_proj(x) * head_dim^-0.5, softmax(q k^T) v, out_proj; no final stack norm;
//   lm_logits = h @ model.shared.weight^T (lm_head.weight when untied) + final_logits_bias.

/** The HF config.json fields the forward reads. */
export interface BartReferenceConfig {
  readonly d_model: number;
  readonly encoder_layers: number;
  readonly decoder_layers: number;
  readonly encoder_attention_heads: number;
  readonly decoder_attention_heads: number;
  readonly vocab_size: number;
  readonly activation_function: string;
  readonly scale_embedding: boolean;
  /** false: the head is lm_head.weight rather than model.shared.weight. */
  readonly tie_word_embeddings?: boolean;
}

type Weights = (name: string) => Float32Array;
type Matrix = Float64Array[]; // rows of length `width`

const LAYER_NORM_EPS = 1e-5; // nn.LayerNorm's default, which BART uses

/** erf to ~1e-15: its Taylor series below 3, the continued fraction of erfc above (Lentz). */
function erf(x: number): number {
  const z = Math.abs(x);
  if (z < 3) {
    let term = z;
    let sum = z;
    for (let n = 1; n < 100 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
      term *= (-z * z) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(z) = exp(-z^2)/sqrt(pi) * 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + 2/(z + ...)))))
  let f = z;
  let c = z;
  let d = 0;
  for (let n = 1; n < 200; n++) {
    const a = n / 2;
    d = 1 / (z + a * d);
    c = z + a / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.sign(x) * (1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / f);
}

function activation(name: string): (x: number) => number {
  switch (name) {
    case 'gelu':
      return (x) => 0.5 * x * (1 + erf(x / Math.SQRT2));
    case 'relu':
      return (x) => Math.max(0, x);
    case 'gelu_new':
      return (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    case 'silu':
    case 'swish':
      return (x) => x / (1 + Math.exp(-x));
    default:
      throw new RangeError(`reference: activation ${name} not written`);
  }
}

/** x W^T + b for W [out, in] stored row-major. */
function linear(x: Matrix, w: Float32Array, b: Float32Array | null): Matrix {
  const inDim = x[0]!.length;
  const out = w.length / inDim;
  return x.map((row) => {
    const y = new Float64Array(out);
    for (let o = 0; o < out; o++) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < inDim; i++) s += row[i]! * w[o * inDim + i]!;
      y[o] = s;
    }
    return y;
  });
}

function layerNorm(x: Matrix, w: Float32Array, b: Float32Array): Matrix {
  return x.map((row) => {
    const n = row.length;
    const mean = row.reduce((s, v) => s + v, 0) / n;
    const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
    const inv = 1 / Math.sqrt(variance + LAYER_NORM_EPS);
    return Float64Array.from(row, (v, i) => (v - mean) * inv * w[i]! + b[i]!);
  });
}

const addRows = (a: Matrix, b: Matrix): Matrix => a.map((row, r) => Float64Array.from(row, (v, i) => v + b[r]![i]!));

export class BartReference {
  constructor(
    private readonly config: BartReferenceConfig,
    private readonly W: Weights,
  ) {}

  /** The encoder output [src, d_model] of one unpadded input. */
  encode(ids: readonly number[]): Matrix {
    const c = this.config;
    let h = this.embed('model.encoder', ids, 0);
    for (let l = 0; l < c.encoder_layers; l++) {
      const p = `model.encoder.layers.${l}`;
      h = this.layerNorm(addRows(h, this.attention(`${p}.self_attn`, h, h, c.encoder_attention_heads, false)), `${p}.self_attn_layer_norm`);
      h = this.layerNorm(addRows(h, this.feedForward(p, h)), `${p}.final_layer_norm`);
    }
    return h;
  }

  /** Logits [decoderIds.length, vocab] of every decoder position, given the encoder output. */
  decode(encoderOut: Matrix, decoderIds: readonly number[]): Matrix {
    const c = this.config;
    let h = this.embed('model.decoder', decoderIds, 0);
    for (let l = 0; l < c.decoder_layers; l++) {
      const p = `model.decoder.layers.${l}`;
      h = this.layerNorm(addRows(h, this.attention(`${p}.self_attn`, h, h, c.decoder_attention_heads, true)), `${p}.self_attn_layer_norm`);
      h = this.layerNorm(addRows(h, this.attention(`${p}.encoder_attn`, h, encoderOut, c.decoder_attention_heads, false)), `${p}.encoder_attn_layer_norm`);
      h = this.layerNorm(addRows(h, this.feedForward(p, h)), `${p}.final_layer_norm`);
    }
    const head = this.config.tie_word_embeddings === false ? 'lm_head.weight' : 'model.shared.weight';
    return linear(h, this.W(head), this.W('final_logits_bias'));
  }

  private embed(stack: string, ids: readonly number[], start: number): Matrix {
    const d = this.config.d_model;
    const scale = this.config.scale_embedding ? Math.sqrt(d) : 1;
    const tokens = this.W('model.shared.weight');
    const positions = this.W(`${stack}.embed_positions.weight`);
    const offset = 2; // BartLearnedPositionalEmbedding
    const h = ids.map((id, t) => Float64Array.from({ length: d }, (_, i) => tokens[id * d + i]! * scale + positions[(start + t + offset) * d + i]!));
    return this.layerNorm(h, `${stack}.layernorm_embedding`);
  }

  private layerNorm(x: Matrix, prefix: string): Matrix {
    return layerNorm(x, this.W(`${prefix}.weight`), this.W(`${prefix}.bias`));
  }

  private proj(x: Matrix, prefix: string): Matrix {
    return linear(x, this.W(`${prefix}.weight`), this.W(`${prefix}.bias`));
  }

  private feedForward(prefix: string, h: Matrix): Matrix {
    const act = activation(this.config.activation_function);
    return this.proj(this.proj(h, `${prefix}.fc1`).map((row) => row.map(act)), `${prefix}.fc2`);
  }

  private attention(prefix: string, x: Matrix, kv: Matrix, heads: number, causal: boolean): Matrix {
    const d = this.config.d_model;
    const hd = d / heads;
    const q = this.proj(x, `${prefix}.q_proj`).map((row) => row.map((v) => v * hd ** -0.5));
    const k = this.proj(kv, `${prefix}.k_proj`);
    const v = this.proj(kv, `${prefix}.v_proj`);
    const context = x.map(() => new Float64Array(d));
    for (let head = 0; head < heads; head++) {
      const o = head * hd;
      for (let i = 0; i < x.length; i++) {
        const keys = causal ? i + 1 : kv.length;
        const scores = Array.from({ length: keys }, (_, j) => {
          let s = 0;
          for (let e = 0; e < hd; e++) s += q[i]![o + e]! * k[j]![o + e]!;
          return s;
        });
        const max = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - max));
        const total = exps.reduce((a, b) => a + b, 0);
        for (let j = 0; j < keys; j++) for (let e = 0; e < hd; e++) context[i]![o + e]! += (exps[j]! / total) * v[j]![o + e]!;
      }
    }
    return this.proj(context, `${prefix}.out_proj`);
  }
}
