import test from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { blockModels } from '../../../shared/autodiff/block-models.js';
import { serializeGraph, serializeSubgraph } from '../../../shared/onnx/serialize.js';
import { loraScale, type LoraParamSpec, type LoraSettings } from '../../../shared/models/lora.js';
import { buildT5Block, T5_BLOCK_KINDS } from '../../../shared/models/t5-block-graphs.js';
import type { T5Config } from '../../../shared/models/t5-config.js';
import { buildT5Graph, type T5Graph } from '../../../shared/models/t5-graph.js';
import { numel, t5ParamSpecs } from '../../../shared/models/t5-params.js';
import { rngStream } from '../../../shared/random.js';
import { T5Feeds } from '../../../shared/models/t5-feeds.js';
import { paddedBatch, randomParams, tinyConfig } from './t5-helpers.js';

// LoRA in the T5 graphs (see [Note: LoRA]), in float64 against three references: central finite
// differences of the same graph, the base graph (B = 0 changes nothing), and the base graph with
// the merged weight W + scale * B @ A (PEFT's merge_and_unload) computed here in JavaScript.

// q and v (PEFT's default for t5) plus a feed-forward and a cross-attention projection, so that
// every kind of Linear site in a block carries an adapter somewhere.
const LORA: LoraSettings = { r: 3, alpha: 6, dropout: 0.05, targetModules: ['q', 'v', 'wo', 'EncDecAttention.k'] };

type Params = Map<string, Float64Array>;

function baseParams(config: T5Config, seed: number): Params {
  const flat = randomParams(new Float64Array(t5ParamSpecs(config).reduce((n, s) => n + numel(s.shape), 0)), seed);
  const out: Params = new Map();
  let o = 0;
  for (const s of t5ParamSpecs(config)) {
    out.set(s.name, flat.subarray(o, o + numel(s.shape)));
    o += numel(s.shape);
  }
  return out;
}

/** Adapters with A and B random (B nonzero: otherwise dL/dA = 0 and the A check is vacuous), or B = 0. */
function adapterParams(specs: readonly LoraParamSpec[], seed: number, bZero = false): Params {
  const r = rngStream(seed, 7);
  return new Map(specs.map((s) => [s.name, Float64Array.from({ length: numel(s.shape) }, () => (s.role === 'B' && bZero ? 0 : 0.3 * r.normal()))]));
}

async function session(built: T5Graph, optimize = true): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };
  return ort.InferenceSession.create(serializeGraph(built.graph), optimize ? options : { ...options, graphOptimizationLevel: 'disabled' });
}

async function run(s: ort.InferenceSession, built: T5Graph, config: T5Config, params: Params, fetch: string[]) {
  const feeds: Record<string, ort.Tensor> = new T5Feeds(config, 'float64').feeds(paddedBatch());
  for (const p of [...built.params, ...built.adapters]) feeds[p.name] = new ort.Tensor('float64', params.get(p.name)!, [...p.shape]);
  return s.run(feeds, fetch);
}

async function lossOf(s: ort.InferenceSession, built: T5Graph, config: T5Config, params: Params): Promise<number> {
  return Number((await run(s, built, config, params, ['loss_sum'])).loss_sum!.data[0]);
}

test('adapter gradients (A and B) match central finite differences of the same graph', async () => {
  const config = tinyConfig();
  const built = buildT5Graph(config, { dtype: 'float64', dropout: false, gradients: 'dense', lora: LORA });
  assert.equal(built.gradientOutputs.length, built.adapters.length, 'gradients for the adapters only');
  assert.ok(built.adapters.length > 0);
  const s = await session(built);
  try {
    const params = new Map([...baseParams(config, 1), ...adapterParams(built.adapters, 2)]);
    const out = await run(s, built, config, params, built.gradientOutputs.map((g) => g.dense!));
    const grads = built.adapters.map((a, i) => out[built.gradientOutputs[i]!.dense!]!.data as Float64Array);
    const gmax = grads.reduce((m, g) => g.reduce((mm, x) => Math.max(mm, Math.abs(x)), m), 0);
    // Same step and bound as t5-gradients.test.ts: h = 1e-5 gives truncation ~h^2 |L'''| ~1e-10 and
    // rounding ~eps |L| / h ~1e-10 (loss sums near 20), so 1e-7 of the largest gradient entry has
    // three orders of margin, while a wrong rule or a missing scale (errors of the gradient's own
    // size) fails by far.
    const H = 1e-5;
    const TOL = 1e-7;
    const r = rngStream(3, 4);
    for (const [i, a] of built.adapters.entries()) {
      const p = params.get(a.name)!;
      for (let k = 0; k < 2; k++) {
        const j = Math.floor(r.uniform() * p.length);
        const old = p[j]!;
        p[j] = old + H;
        const up = await lossOf(s, built, config, params);
        p[j] = old - H;
        const down = await lossOf(s, built, config, params);
        p[j] = old;
        const fd = (up - down) / (2 * H);
        assert.ok(Math.abs(fd - grads[i]![j]!) <= TOL * gmax, `${a.name}[${j}]: analytic ${grads[i]![j]} vs finite difference ${fd}`);
      }
    }
  } finally {
    await s.release();
  }
});

test('with B = 0 the LoRA graph gives the base model loss exactly', async () => {
  const config = tinyConfig();
  const lora = buildT5Graph(config, { dtype: 'float64', dropout: false, gradients: false, lora: LORA });
  const base = buildT5Graph(config, { dtype: 'float64', dropout: false, gradients: false });
  const [sl, sb] = [await session(lora), await session(base)];
  try {
    const params = baseParams(config, 5);
    const withAdapters = new Map([...params, ...adapterParams(lora.adapters, 6, true)]);
    // x W^T + 0 * scale is x W^T to the bit (adding +0 is exact), so nothing downstream can differ.
    assert.equal(await lossOf(sl, lora, config, withAdapters), await lossOf(sb, base, config, params));
  } finally {
    await sl.release();
    await sb.release();
  }
});

for (const variant of [
  { name: 'T5 v1.1 (gated-gelu, untied head)', overrides: {} },
  { name: 'original T5 (relu, tied embeddings)', overrides: { feed_forward_proj: 'relu', tie_word_embeddings: true } },
]) test(`the adapter graph equals the base graph with merged weights W + scale * B @ A: ${variant.name}`, async () => {
  const config = tinyConfig(variant.overrides);
  const lora = buildT5Graph(config, { dtype: 'float64', dropout: false, gradients: false, lora: LORA });
  const base = buildT5Graph(config, { dtype: 'float64', dropout: false, gradients: false });
  const [sl, sb] = [await session(lora), await session(base)];
  try {
    const params = baseParams(config, 8);
    const adapters = adapterParams(lora.adapters, 9);
    const merged: Params = new Map([...params].map(([k, v]) => [k, Float64Array.from(v)]));
    const scale = loraScale(LORA);
    for (const a of lora.adapters.filter((x) => x.role === 'A')) {
      const A = adapters.get(a.name)!;
      const B = adapters.get(a.name.replace('lora_A', 'lora_B'))!;
      const W = merged.get(a.baseWeight)!;
      const [rank, n] = a.shape as [number, number];
      const m = W.length / n;
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let acc = 0;
          for (let k = 0; k < rank; k++) acc += B[i * rank + k]! * A[k * n + j]!;
          W[i * n + j]! += scale * acc;
        }
      }
    }
    const viaAdapters = await lossOf(sl, lora, config, new Map([...params, ...adapters]));
    const viaMerged = await lossOf(sb, base, config, merged);
    // Two float64 formulations of one function (products regrouped): agreement to ~1e-13 relative
    // for a loss sum near 20; a wrong scale or transposed adapter differs in the first digits.
    assert.ok(Math.abs(viaAdapters - viaMerged) <= 1e-11 * Math.abs(viaMerged), `${viaAdapters} vs ${viaMerged}`);
    assert.ok(Math.abs(viaAdapters - (await lossOf(sb, base, config, params))) > 1e-3, 'the adapters change the loss');
  } finally {
    await sl.release();
    await sb.release();
  }
});

test('LoRA graph inputs, gradients and dropout sites: PEFT names whole, module names in blocks, sites map block -> whole', () => {
  const config = tinyConfig();
  const whole = buildT5Graph(config, { dtype: 'float32', dropout: true, gradients: 'rows', lora: LORA });
  const inputs = new Set(whole.graph.inputs.map((v) => v.name));
  assert.ok(inputs.has('base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight'));
  assert.ok(inputs.has('base_model.model.decoder.block.1.layer.1.EncDecAttention.k.lora_B.weight'));
  assert.ok(whole.gradientOutputs.every((g) => g.dense !== null && g.rows.length === 0), 'adapters have dense gradients only');
  assert.ok(!whole.graph.outputs.some((o) => o.name === 'grad.shared.weight'), 'no gradient for frozen weights');
  const wholeSites = new Map(whole.dropoutSites.map((s) => [s.input, s]));
  const loraSite = wholeSites.get('dropout.encoder.block.0.layer.0.SelfAttention.q.lora_dropout');
  assert.equal(loraSite?.rate, LORA.dropout);
  assert.equal(wholeSites.get('dropout.encoder.block.0.self.out')?.rate, undefined, 'model sites keep the model rate');

  const prefixes: Record<string, string[]> = {
    'encoder.block': Array.from({ length: config.numEncoderLayers }, (_, i) => `encoder.block.${i}.`),
    'decoder.block': Array.from({ length: config.numDecoderLayers }, (_, i) => `decoder.block.${i}.`),
  };
  for (const kind of T5_BLOCK_KINDS) {
    const block = buildT5Block(kind, config, { dtype: 'float32', dropout: true, lora: LORA });
    const adapted = kind === 'encoder.block' || kind === 'decoder.block';
    assert.equal(block.params.length > 0, adapted, `${kind}: adapters are the only parameters`);
    assert.ok(block.params.every((p) => /\.lora_[AB]\.weight$/u.test(p.name) && !p.name.startsWith('base_model')), `${kind}: local adapter names`);
    assert.ok(block.frozen.length > 0, `${kind}: base weights frozen`);
    for (const site of block.dropoutSites.filter((s) => s.input.endsWith('.lora_dropout'))) {
      for (const prefix of prefixes[kind]!) {
        const w = wholeSites.get(`dropout.${prefix}${site.input.slice('dropout.'.length)}`);
        assert.ok(w && w.rate === site.rate, `${kind} ${site.input} under ${prefix}`);
      }
    }
  }
  const enc = buildT5Block('encoder.block', config, { dtype: 'float32', dropout: false, lora: LORA });
  assert.deepEqual(enc.params.map((p) => p.name), [
    'layer.0.SelfAttention.q.lora_A.weight', 'layer.0.SelfAttention.q.lora_B.weight',
    'layer.0.SelfAttention.v.lora_A.weight', 'layer.0.SelfAttention.v.lora_B.weight',
    'layer.1.DenseReluDense.wo.lora_A.weight', 'layer.1.DenseReluDense.wo.lora_B.weight',
  ]);
});

test('LoRA targets the T5 graph cannot hold are refused by name', () => {
  const config = tinyConfig();
  assert.throws(() => buildT5Graph(config, { dtype: 'float32', dropout: false, gradients: false, lora: { ...LORA, targetModules: ['lm_head'] } }), /lm_head is not supported/u);
  assert.throws(() => buildT5Block('head', config, { dtype: 'float32', dropout: false, lora: { ...LORA, targetModules: ['q', 'lm_head'] } }), /LoRA on lm_head is not supported/u);
  assert.throws(() => buildT5Block('encoder.block', config, { dtype: 'float32', dropout: false, lora: { ...LORA, targetModules: ['encoder.block.1.layer.0.SelfAttention.q'] } }), /different modules/u);
});

test('the LoRA block graphs, run in sequence, give the LoRA whole graph loss (float64)', async () => {
  const config = tinyConfig();
  const whole = buildT5Graph(config, { dtype: 'float64', dropout: false, gradients: false, lora: LORA });
  const params = new Map([...baseParams(config, 11), ...adapterParams(whole.adapters, 12)]);
  const ws = await session(whole);
  const expected = await lossOf(ws, whole, config, params);
  await ws.release();

  const data = new T5Feeds(config, 'float64').feeds(paddedBatch());
  const t = (name: string) => {
    const v = params.get(name)!;
    const spec = [...whole.params, ...whole.adapters].find((s) => s.name === name)!;
    return new ort.Tensor('float64', v, [...spec.shape]);
  };
  const runBlock = async (kind: (typeof T5_BLOCK_KINDS)[number], feeds: Record<string, ort.Tensor>, prefix = ''): Promise<ort.Tensor> => {
    const def = buildT5Block(kind, config, { dtype: 'float64', dropout: false, lora: LORA });
    // The forward alone: with LoRA the embedding and bias blocks have nothing to differentiate
    // (no activations, frozen parameters), so blockModels has no backward to build for them.
    const s = await ort.InferenceSession.create(serializeSubgraph(def.graph, def.outputs, null), { intraOpNumThreads: 1 });
    try {
      const all: Record<string, ort.Tensor> = { ...data, ...feeds };
      // Layer parameters and adapters: the block's local name after the layer's HF / PEFT prefix.
      for (const v of [...def.params, ...def.frozen]) {
        if (all[v.name]) continue;
        all[v.name] = t(v.name.includes('.lora_') ? `base_model.model.${prefix}${v.name}` : `${prefix}${v.name}`);
      }
      const out = await s.run(Object.fromEntries(s.inputNames.map((n) => [n, all[n]!])));
      return out[def.loss ? 'loss_sum' : 'out']!;
    } finally {
      await s.release();
    }
  };
  const table = (stack: string) => t(`${stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`);
  let h = await runBlock('embed', { weight: t('shared.weight'), ids: data.input_ids! });
  const encBias = await runBlock('encoder.bias', { weight: table('encoder') });
  for (let i = 0; i < config.numEncoderLayers; i++) h = await runBlock('encoder.block', { hidden: h, bias: encBias }, `encoder.block.${i}.`);
  const encoderOut = await runBlock('encoder.final', { hidden: h, 'final_layer_norm.weight': t('encoder.final_layer_norm.weight') });
  let d = await runBlock('embed', { weight: t('shared.weight'), ids: data.decoder_input_ids! });
  const decBias = await runBlock('decoder.bias', { weight: table('decoder') });
  for (let i = 0; i < config.numDecoderLayers; i++) d = await runBlock('decoder.block', { hidden: d, encoder_out: encoderOut, bias: decBias }, `decoder.block.${i}.`);
  const loss = await runBlock('head', { hidden: d, 'final_layer_norm.weight': t('decoder.final_layer_norm.weight'), 'head.weight': t('lm_head.weight') });
  // The same float64 operations cut into sessions: equal to rounding (1e-12 relative).
  const got = Number(loss.data[0]);
  assert.ok(Math.abs(got - expected) <= 1e-12 * Math.abs(expected), `${got} vs ${expected}`);
});

test('a LoRA decoder block backward gives its adapters the gradient finite differences give (float64)', async () => {
  const config = tinyConfig();
  const def = buildT5Block('decoder.block', config, { dtype: 'float64', dropout: false, lora: LORA });
  const models = blockModels(def, 'recompute');
  const [fwd, bwd] = [await ort.InferenceSession.create(models.forward!, { intraOpNumThreads: 1 }), await ort.InferenceSession.create(models.backward!, { intraOpNumThreads: 1 })];
  try {
    const batch = paddedBatch();
    const [b, s, tl, dm] = [batch.batchSize, batch.srcLen, batch.tgtLen, config.dModel];
    const r = rngStream(21, 1);
    const rand = (shape: number[]) => new ort.Tensor('float64', Float64Array.from({ length: numel(shape) }, () => r.normal() * 0.5), shape);
    const feeds: Record<string, ort.Tensor> = {
      ...new T5Feeds(config, 'float64').feeds(batch),
      hidden: rand([b, tl, dm]), encoder_out: rand([b, s, dm]), bias: rand([1, config.numHeads, tl, tl]),
    };
    const values = new Map<string, Float64Array>();
    for (const v of [...def.params, ...def.frozen]) {
      const shape = v.shape as number[];
      const tensor = v.name.includes('.lora_') || !v.name.endsWith('layer_norm.weight') ? rand(shape) : new ort.Tensor('float64', new Float64Array(numel(shape)).fill(1), shape);
      values.set(v.name, tensor.data as Float64Array);
      feeds[v.name] = tensor;
    }
    const seed = rand([b, tl, dm]);
    const objective = async () => {
      const out = (await fwd.run(Object.fromEntries(fwd.inputNames.map((n) => [n, feeds[n]!])))).out!.data as Float64Array;
      return out.reduce((acc, x, i) => acc + x * (seed.data as Float64Array)[i]!, 0);
    };
    const all = { ...feeds, [models.seeds[0]!.seed]: seed };
    const grads = await bwd.run(Object.fromEntries(bwd.inputNames.map((n) => [n, all[n]!])));
    assert.equal(models.paramGradients.length, def.params.length);
    const gmax = models.paramGradients.reduce((m, p) => (grads[p.dense!]!.data as Float64Array).reduce((mm, x) => Math.max(mm, Math.abs(x)), m), 0);
    const H = 1e-5; // as above: truncation and rounding ~1e-10 against 1e-7 of the largest entry
    const pick = rngStream(22, 1);
    for (const p of models.paramGradients) {
      const v = values.get(p.param)!;
      const g = grads[p.dense!]!.data as Float64Array;
      for (let k = 0; k < 2; k++) {
        const j = Math.floor(pick.uniform() * v.length);
        const old = v[j]!;
        v[j] = old + H;
        const up = await objective();
        v[j] = old - H;
        const down = await objective();
        v[j] = old;
        const fd = (up - down) / (2 * H);
        assert.ok(Math.abs(fd - g[j]!) <= 1e-7 * gmax, `${p.param}[${j}]: ${g[j]} vs ${fd}`);
      }
    }
  } finally {
    await fwd.release();
    await bwd.release();
  }
});

test('lora_dropout acts on the adapter input only, at the LoRA rate', async () => {
  const config = tinyConfig();
  const lora = buildT5Graph(config, { dtype: 'float64', dropout: true, gradients: false, lora: LORA });
  const base = buildT5Graph(config, { dtype: 'float64', dropout: true, gradients: false });
  // ORT's graph optimisations off: with dropout scales in the graph, its fusions (float attributes
  // such as FusedMatMul's alpha) round differently in the two graphs, ~2e-9 relative in float64;
  // this test is about our graph's function: unoptimised, dropped is exact and kept within 1e-11.
  const [sl, sb] = [await session(lora, false), await session(base, false)];
  try {
    const params = baseParams(config, 31);
    const adapters = adapterParams(lora.adapters, 32);
    const dims: Record<string, number> = { batch: 2, src_len: 5, tgt_len: 4 };
    // Model sites keep everything (a fixed 1/(1-p) scale in both graphs); LoRA sites as given.
    const masks = (sites: T5Graph['dropoutSites'], keepLora: boolean) => Object.fromEntries(sites.map((s) => {
      const shape = s.shape.map((d) => (typeof d === 'number' ? d : dims[d]!));
      return [s.input, new ort.Tensor('bool', new Uint8Array(numel(shape)).fill(s.rate === undefined || keepLora ? 1 : 0), shape)];
    }));
    const lossWith = async (s: ort.InferenceSession, built: T5Graph, values: Params, keepLora: boolean) => {
      const feeds: Record<string, ort.Tensor> = { ...new T5Feeds(config, 'float64').feeds(paddedBatch()), ...masks(built.dropoutSites, keepLora) };
      for (const p of [...built.params, ...built.adapters]) feeds[p.name] = new ort.Tensor('float64', values.get(p.name)!, [...p.shape]);
      return Number((await s.run(feeds, ['loss_sum'])).loss_sum!.data[0]);
    };
    const all = new Map([...params, ...adapters]);
    assert.ok(lora.dropoutSites.filter((s) => s.rate !== undefined).length === lora.adapters.length / 2, 'one lora_dropout site per adapted module');
    // Every LoRA input dropped: the adapters contribute nothing, the base path is untouched.
    assert.equal(await lossWith(sl, lora, all, false), await lossWith(sb, base, params, false));
    // Every LoRA input kept: the adapter path is scaled by 1/(1 - lora_dropout), i.e. merged weights
    // W + scale / (1 - p) * B @ A (1e-11 relative as in the merged-weights test).
    const merged: Params = new Map([...params].map(([k, v]) => [k, Float64Array.from(v)]));
    const factor = loraScale(LORA) / (1 - LORA.dropout);
    for (const a of lora.adapters.filter((x) => x.role === 'A')) {
      const A = adapters.get(a.name)!;
      const B = adapters.get(a.name.replace('lora_A', 'lora_B'))!;
      const W = merged.get(a.baseWeight)!;
      const [rank, n] = a.shape as [number, number];
      for (let i = 0; i < W.length / n; i++) {
        for (let j = 0; j < n; j++) {
          let acc = 0;
          for (let k = 0; k < rank; k++) acc += B[i * rank + k]! * A[k * n + j]!;
          W[i * n + j]! += factor * acc;
        }
      }
    }
    const kept = await lossWith(sl, lora, all, true);
    const viaMerged = await lossWith(sb, base, merged, true);
    assert.ok(Math.abs(kept - viaMerged) <= 1e-11 * Math.abs(viaMerged), `${kept} vs ${viaMerged}`);
  } finally {
    await sl.release();
    await sb.release();
  }
});
