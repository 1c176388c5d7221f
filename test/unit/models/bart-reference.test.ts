import test from 'node:test';
import assert from 'node:assert/strict';
import type { Seq2SeqBatch } from '../../../shared/models/batch.js';
import type { BartConfig } from '../../../shared/models/bart-config.js';
import { BartFamily } from '../../../shared/models/bart-family.js';
import { bartBatch, familyValues, tinyBart, WholeBart, type Params } from './bart-helpers.js';

// The ONNX graph against an independent formulation in plain JS float64: a straightforward loop
// implementation of HF's BartForConditionalGeneration forward (modeling_bart: learned positions at
// offset 2, embed_scale, layernorm_embedding, post-LN layers, q scaled by head_dim^-0.5, causal
// decoder self-attention, cross-attention masked by the encoder's attention_mask, exact erf GELU,
// lm_head tied to model.shared plus final_logits_bias), row by row, masked keys skipped rather than
// added at finfo.min. Both sides are float64 and differ only in summation order, ~1e-15 relative per
// op over a depth of a few hundred ops: 1e-11 of the largest logit leaves a wide margin, while any
// semantic difference (a missing offset, scale, bias or norm) moves logits by O(0.1).
const TOL = 1e-11;

/** erf by its positive-term series 2/sqrt(pi) x e^{-x^2} sum 2^n x^{2n} / (2n+1)!! (no cancellation), exact to an ulp for |x| <= 6. */
function erf(x: number): number {
  if (Math.abs(x) > 6) return Math.sign(x);
  let term = 1;
  let sum = 1;
  for (let n = 1; n < 400 && term > 1e-18 * sum; n++) {
    term *= (2 * x * x) / (2 * n + 1);
    sum += term;
  }
  return (2 / Math.sqrt(Math.PI)) * x * Math.exp(-x * x) * sum;
}

type Mat = number[][];

class ReferenceBart {
  constructor(
    private readonly c: BartConfig,
    private readonly p: Params,
  ) {}

  private w(name: string): Float64Array {
    const v = this.p.get(name);
    if (!v) throw new Error(`reference: no ${name}`);
    return v;
  }

  private linear(x: Mat, module: string): Mat {
    const W = this.w(`${module}.weight`);
    const b = this.w(`${module}.bias`);
    const inDim = x[0]!.length;
    const out = b.length;
    return x.map((row) => Array.from({ length: out }, (_, o) => {
      let s = b[o]!;
      for (let i = 0; i < inDim; i++) s += row[i]! * W[o * inDim + i]!;
      return s;
    }));
  }

  private layerNorm(x: Mat, module: string): Mat {
    const g = this.w(`${module}.weight`);
    const b = this.w(`${module}.bias`);
    return x.map((row) => {
      const mean = row.reduce((a, v) => a + v, 0) / row.length;
      const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / row.length;
      return row.map((v, i) => ((v - mean) / Math.sqrt(variance + 1e-5)) * g[i]! + b[i]!);
    });
  }

  /** `visible(q, k)`: whether query q may attend to key k. */
  private attention(x: Mat, kv: Mat, module: string, heads: number, visible: (q: number, k: number) => boolean): Mat {
    const d = this.c.dModel;
    const hd = d / heads;
    const q = this.linear(x, `${module}.q_proj`).map((r) => r.map((v) => v * hd ** -0.5));
    const k = this.linear(kv, `${module}.k_proj`);
    const v = this.linear(kv, `${module}.v_proj`);
    const context: Mat = x.map(() => new Array<number>(d).fill(0));
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < x.length; i++) {
        const keys = kv.map((_, j) => j).filter((j) => visible(i, j));
        const scores = keys.map((j) => {
          let s = 0;
          for (let e = 0; e < hd; e++) s += q[i]![h * hd + e]! * k[j]![h * hd + e]!;
          return s;
        });
        const m = Math.max(...scores);
        const ex = scores.map((s) => Math.exp(s - m));
        const z = ex.reduce((a, b) => a + b, 0);
        keys.forEach((j, n) => {
          for (let e = 0; e < hd; e++) context[i]![h * hd + e]! += (ex[n]! / z) * v[j]![h * hd + e]!;
        });
      }
    }
    return this.linear(context, `${module}.out_proj`);
  }

  private residual(h: Mat, out: Mat, norm: string): Mat {
    return this.layerNorm(h.map((r, i) => r.map((x, j) => x + out[i]![j]!)), norm);
  }

  private feedForward(h: Mat, prefix: string): Mat {
    const inner = this.linear(h, `${prefix}.fc1`).map((r) => r.map((x) => 0.5 * x * (1 + erf(x / Math.SQRT2))));
    return this.residual(h, this.linear(inner, `${prefix}.fc2`), `${prefix}.final_layer_norm`);
  }

  private embed(ids: readonly number[], stack: 'encoder' | 'decoder'): Mat {
    const d = this.c.dModel;
    const shared = this.w('model.shared.weight');
    const pos = this.w(`model.${stack}.embed_positions.weight`);
    const scale = this.c.scaleEmbedding ? Math.sqrt(d) : 1;
    const x = ids.map((id, t) => Array.from({ length: d }, (_, j) => shared[id * d + j]! * scale + pos[(t + 2) * d + j]!));
    return this.layerNorm(x, `model.${stack}.layernorm_embedding`);
  }

  /** Logits [tgt][vocab] for one row. */
  logits(inputIds: readonly number[], mask: readonly number[], decoderIds: readonly number[]): Mat {
    const c = this.c;
    let h = this.embed(inputIds, 'encoder');
    for (let l = 0; l < c.encoderLayers; l++) {
      const p = `model.encoder.layers.${l}`;
      h = this.residual(h, this.attention(h, h, `${p}.self_attn`, c.encoderHeads, (_, k) => mask[k] === 1), `${p}.self_attn_layer_norm`);
      h = this.feedForward(h, p);
    }
    let d = this.embed(decoderIds, 'decoder');
    for (let l = 0; l < c.decoderLayers; l++) {
      const p = `model.decoder.layers.${l}`;
      d = this.residual(d, this.attention(d, d, `${p}.self_attn`, c.decoderHeads, (q, k) => k <= q), `${p}.self_attn_layer_norm`);
      d = this.residual(d, this.attention(d, h, `${p}.encoder_attn`, c.decoderHeads, (_, k) => mask[k] === 1), `${p}.encoder_attn_layer_norm`);
      d = this.feedForward(d, p);
    }
    const head = this.w(c.tieWordEmbeddings ? 'model.shared.weight' : 'lm_head.weight');
    const bias = this.w('final_logits_bias');
    return d.map((row) => Array.from({ length: c.vocabSize }, (_, v) => {
      let s = bias[v]!;
      for (let j = 0; j < c.dModel; j++) s += row[j]! * head[v * c.dModel + j]!;
      return s;
    }));
  }
}

/** HF's shift_tokens_right as its closed form: [start, labels[0..n-2]] with -100 replaced by pad. */
function shiftTokensRight(labels: readonly number[], pad: number, start: number): number[] {
  return [start, ...labels.slice(0, -1)].map((x) => (x === -100 ? pad : x));
}

function rowsOf(batch: Seq2SeqBatch, r: number) {
  const { srcLen: s, tgtLen: t } = batch;
  return {
    inputIds: [...batch.inputIds.subarray(r * s, (r + 1) * s)],
    mask: [...batch.attentionMask.subarray(r * s, (r + 1) * s)],
    labels: [...batch.labels.subarray(r * t, (r + 1) * t)],
  };
}

test('shift_tokens_right: the decoder inputs the family feeds are its closed form', () => {
  const config = tinyBart({ decoder_start_token_id: 2 });
  const family = new BartFamily(config);
  const batch = { ...bartBatch(), labels: Int32Array.from([12, -100, 14, 1, 15, 16, 1, -100]) };
  const fed = [...(family.feeds(batch, 'float64').decoder_input_ids!.data as Int32Array)];
  assert.deepEqual(fed, [2, 12, 0, 14, 2, 15, 16, 1]);
  const closed = [0, 1].flatMap((r) => shiftTokensRight(rowsOf(batch, r).labels, config.padTokenId, config.decoderStartTokenId));
  assert.deepEqual(fed, closed);
});

for (const variant of [
  { name: 'tied, scale_embedding', overrides: {} },
  { name: 'untied lm_head, no embedding scale, 2 decoder heads', overrides: { tie_word_embeddings: false, scale_embedding: false, decoder_attention_heads: 2 } },
]) {
  test(`the graph's logits and loss equal a plain-JS float64 BART forward: ${variant.name}`, async () => {
    const config = tinyBart(variant.overrides);
    const family = new BartFamily(config);
    const values = familyValues(family, 21);
    const batch = bartBatch();
    const model = await WholeBart.create(config, { logits: true });
    try {
      const out = await model.run(values, batch);
      const logits = out.logits!.data as Float64Array;
      const ref = new ReferenceBart(config, values);
      const V = config.vocabSize;
      let scale = 0;
      let worst = 0;
      let loss = 0;
      let tokens = 0;
      for (let r = 0; r < batch.batchSize; r++) {
        const row = rowsOf(batch, r);
        const want = ref.logits(row.inputIds, row.mask, shiftTokensRight(row.labels, config.padTokenId, config.decoderStartTokenId));
        want.forEach((pos, t) => {
          pos.forEach((x, v) => {
            scale = Math.max(scale, Math.abs(x));
            worst = Math.max(worst, Math.abs(x - logits[(r * batch.tgtLen + t) * V + v]!));
          });
          const label = row.labels[t]!;
          if (label === -100) return;
          const m = Math.max(...pos);
          loss += m + Math.log(pos.reduce((a, x) => a + Math.exp(x - m), 0)) - pos[label]!;
          tokens++;
        });
      }
      assert.ok(scale > 0.1, 'logits of a random model are not all near zero');
      assert.ok(worst <= TOL * scale, `worst logit difference ${worst} (largest logit ${scale})`);
      assert.equal(Number(out.token_count!.data[0]), tokens);
      const got = Number(out.loss_sum!.data[0]);
      assert.ok(Math.abs(got - loss) <= TOL * Math.abs(loss), `loss ${got} vs reference ${loss}`);
    } finally {
      await model.release();
    }
  });
}

test('padding: a padded row gives the same logits as the row alone (masked keys contribute nothing)', async () => {
  const config = tinyBart();
  const family = new BartFamily(config);
  const values = familyValues(family, 22);
  const model = await WholeBart.create(config, { logits: true });
  try {
    const padded = bartBatch();
    const alone: Seq2SeqBatch = {
      batchSize: 1, srcLen: 4, tgtLen: 4,
      inputIds: padded.inputIds.slice(5, 9), attentionMask: padded.attentionMask.slice(5, 9), labels: padded.labels.slice(4, 8),
    };
    const a = (await model.run(values, alone)).logits!.data as Float64Array;
    const p = (await model.run(values, padded)).logits!.data as Float64Array;
    const V = config.vocabSize;
    const scale = a.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    a.forEach((x, i) => assert.ok(Math.abs(x - p[4 * V + i]!) <= 1e-12 * scale, `logit ${i}: ${x} vs ${p[4 * V + i]}`));
  } finally {
    await model.release();
  }
});
