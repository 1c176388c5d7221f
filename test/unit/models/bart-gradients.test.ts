import test from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { blockModels } from '../../../shared/autodiff/block-models.js';
import { BartFamily } from '../../../shared/models/bart-family.js';
import type { Value } from '../../../shared/onnx/graph.js';
import { BART_LOGITS_BIAS } from '../../../shared/models/bart-params.js';
import { rngStream } from '../../../shared/random.js';
import { bartBatch, familyValues, tinyBart, WholeBart, type Params } from './bart-helpers.js';

// Analytic gradients in float64 against central finite differences of the same graph, for the whole
// model (every parameter tensor) and for each block kind on its own (every parameter and activation
// input, upstream gradient seeded with a random W: L = sum(out * W), the block engine's seed path).
//
// Tolerance: h = 1e-5; the central difference errs by truncation h^2/6 |L'''| ~1e-10 plus rounding
// eps |L| / h ~1e-10 (loss sums and seeded sums here are of order 10-100), so the reference is good
// to ~1e-9 of gradients of order 1. A coordinate passes within 1e-7 of the largest |gradient| entry
// of the model (or block): two orders of headroom over the reference's own error, while a wrong
// rule, a dropped term or a mis-wired parameter errs by O(the gradient) and fails by orders of magnitude.
const H = 1e-5;
const TOL = 1e-7;
/** Random coordinates checked per tensor. */
const PICKS = 3;

async function checkWhole(model: WholeBart, values: Params, names: readonly string[]): Promise<void> {
  const batch = bartBatch();
  const out = await model.run(values, batch);
  const grads = new Map(names.map((n) => [n, out[`grad.${n}`]!.data as Float64Array]));
  const gmax = [...grads.values()].reduce((m, g) => g.reduce((a, x) => Math.max(a, Math.abs(x)), m), 0);
  assert.ok(gmax > 0);
  const r = rngStream(2, 3);
  for (const name of names) {
    const v = values.get(name)!;
    for (let k = 0; k < PICKS; k++) {
      const i = Math.floor(r.uniform() * v.length);
      const old = v[i]!;
      v[i] = old + H;
      const up = await model.loss(values, batch);
      v[i] = old - H;
      const down = await model.loss(values, batch);
      v[i] = old;
      const fd = (up - down) / (2 * H);
      const analytic = grads.get(name)![i]!;
      assert.ok(Math.abs(fd - analytic) <= TOL * gmax, `${name}[${i}]: analytic ${analytic} vs finite difference ${fd}`);
    }
  }
}

for (const variant of [
  { name: 'tied, scale_embedding', overrides: {} },
  { name: 'untied lm_head, no embedding scale, different head counts', overrides: { tie_word_embeddings: false, scale_embedding: false, decoder_attention_heads: 2 } },
]) {
  test(`whole-model gradients match finite differences for every parameter tensor: ${variant.name}`, async () => {
    const config = tinyBart(variant.overrides);
    const family = new BartFamily(config);
    const model = await WholeBart.create(config, { gradients: 'dense' });
    try {
      const values = familyValues(family, 1);
      const out = await model.run(values, bartBatch());
      assert.equal(Number(out.token_count!.data[0]), 7, 'labels that are not -100');
      await checkWhole(model, values, family.paramSpecs().map((s) => s.name));
    } finally {
      await model.release();
    }
  });
}

test('LoRA adapter gradients (PEFT default q_proj, v_proj, plus fc2) match finite differences', async () => {
  const config = tinyBart();
  const lora = { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'v_proj', 'fc2'] };
  const family = new BartFamily(config, lora);
  const model = await WholeBart.create(config, { gradients: 'dense', lora });
  try {
    // B random too (not PEFT's zero init): with B = 0, A's gradient would be zero and prove nothing.
    const values = familyValues(family, 4);
    // encoder: 2 layers x (q, v, fc2); decoder: 2 layers x (self q, v, cross q, v, fc2); A and B each
    assert.equal(model.graph.gradientOutputs.length, 2 * (2 * 3 + 2 * 5));
    await checkWhole(model, values, family.paramSpecs().map((s) => s.name));
  } finally {
    await model.release();
  }
});

test('final_logits_bias is used by the loss but is never differentiated', async () => {
  const config = tinyBart();
  const family = new BartFamily(config);
  const model = await WholeBart.create(config, { gradients: 'dense' });
  try {
    assert.ok(!model.graph.graph.outputs.some((o) => o.name.includes(BART_LOGITS_BIAS)), 'no gradient output for the buffer');
    assert.deepEqual(family.frozenSpecs().map((s) => s.name), [BART_LOGITS_BIAS]);
    assert.ok(!family.paramSpecs().some((s) => s.name === BART_LOGITS_BIAS));
    const head = blockModels(family.buildBlock('head', { dtype: 'float64', dropout: false }), 'saved');
    assert.ok(!head.paramGradients.some((p) => p.param === BART_LOGITS_BIAS));
    const values = familyValues(family, 5);
    const before = await model.loss(values, bartBatch());
    values.get(BART_LOGITS_BIAS)![12]! += 1; // the first label's logit
    assert.ok(Math.abs((await model.loss(values, bartBatch())) - before) > 1e-3, 'the bias reaches the logits');
  } finally {
    await model.release();
  }
});

/** Each block kind on its own: analytic input gradients against finite differences of sum(out * W) (or the loss). */
test('every block kind: parameter and activation gradients match finite differences', async () => {
  const config = tinyBart();
  const family = new BartFamily(config);
  const batch = bartBatch();
  const data = family.feeds(batch, 'float64');
  const dims: Record<string, number> = { batch: 2, src_len: 5, tgt_len: 4, seq: 5 };
  for (const kind of family.blockKinds) {
    const def = family.buildBlock(kind, { dtype: 'float64', dropout: false });
    const models = blockModels(def, 'recompute');
    const create = (b: Uint8Array) => ort.InferenceSession.create(b, { intraOpNumThreads: 1, interOpNumThreads: 1 });
    const forward = models.forward ? await create(models.forward) : null;
    const backward = await create(models.backward!);
    try {
      const r = rngStream(11, kind.length);
      const shapeOf = (v: Value) => v.shape.map((d) => (typeof d === 'number' ? d : dims[d]!));
      const random: Record<string, Float64Array> = {};
      const floatInputs = def.graph.inputs.filter((v) => v.dtype === 'float64');
      for (const v of floatInputs) {
        const n = shapeOf(v).reduce((a, b) => a * b, 1);
        const base = /layer_?norm[^.]*\.weight$|layernorm_embedding\.weight$/u.test(v.name) ? 1 : 0;
        random[v.name] = Float64Array.from({ length: n }, () => base + 0.3 * r.normal());
      }
      const out = def.outputs[0]!;
      const w = def.loss ? null : Float64Array.from({ length: shapeOf(out.value).reduce((a, b) => a * b, 1) }, () => r.normal());
      const feedsFor = (session: ort.InferenceSession): Record<string, ort.Tensor> => {
        const f: Record<string, ort.Tensor> = {};
        for (const name of session.inputNames) {
          if (name === 'ids') f[name] = data.input_ids!;
          else if (data[name]) f[name] = data[name]!;
          else if (name.startsWith('seed.')) f[name] = new ort.Tensor('float64', w!, shapeOf(out.value));
          else {
            const v = floatInputs.find((x) => x.name === name)!;
            f[name] = new ort.Tensor('float64', random[name]!, shapeOf(v));
          }
        }
        return f;
      };
      const objective = async (): Promise<number> => {
        if (def.loss) return Number((await backward.run(feedsFor(backward))).loss_sum!.data[0]);
        const y = (await forward!.run(feedsFor(forward!))).out!.data as Float64Array;
        return y.reduce((s, yi, i) => s + yi * w![i]!, 0);
      };
      const grads = await backward.run(feedsFor(backward));
      const gradOf = new Map<string, Float64Array>();
      for (const a of models.activationGradients) gradOf.set(a.activation, grads[a.gradient]!.data as Float64Array);
      for (const p of models.paramGradients) {
        const dense = new Float64Array(random[p.param]!.length);
        if (p.dense) dense.set(grads[p.dense]!.data as Float64Array);
        for (const rg of p.rows) {
          const rows = grads[rg.rows]!.data as Float64Array;
          const idx = grads[rg.indices]!.data as Int32Array | BigInt64Array;
          const width = rows.length / idx.length;
          idx.forEach((row: number | bigint, k: number) => { for (let c = 0; c < width; c++) dense[Number(row) * width + c]! += rows[k * width + c]!; });
        }
        gradOf.set(p.param, dense);
      }
      const differentiated = [...def.activations, ...def.params].map((v) => v.name);
      assert.deepEqual([...gradOf.keys()].sort(), [...differentiated].sort(), `${kind}: a gradient for every differentiated input`);
      const gmax = [...gradOf.values()].reduce((m, g) => g.reduce((a, x) => Math.max(a, Math.abs(x)), m), 0);
      assert.ok(gmax > 0, kind);
      for (const name of differentiated) {
        const v = random[name]!;
        for (let k = 0; k < PICKS; k++) {
          // the token table: only looked-up rows have a gradient, so one probe is in row 5 (an input id)
          const i = k === 0 && name === 'weight' ? 5 * config.dModel + 3 : Math.floor(r.uniform() * v.length);
          const old = v[i]!;
          v[i] = old + H;
          const up = await objective();
          v[i] = old - H;
          const down = await objective();
          v[i] = old;
          const fd = (up - down) / (2 * H);
          const analytic = gradOf.get(name)![i]!;
          assert.ok(Math.abs(fd - analytic) <= TOL * gmax, `${kind} ${name}[${i}]: analytic ${analytic} vs finite difference ${fd}`);
        }
      }
    } finally {
      await forward?.release();
      await backward.release();
    }
  }
});
