import test from 'node:test';
import assert from 'node:assert/strict';
import { EngineError, InputFileError } from '../../../shared/errors.js';
import { NEOX_PRESETS, neoxConfigJson, parseNeoXConfig } from '../../../shared/models/neox-config.js';
import { NeoXFamily } from '../../../shared/models/neox-family.js';
import { isNeoXCheckpointBuffer } from '../../../shared/models/neox-params.js';
import { numel } from '../../../shared/models/t5-params.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { initFlatRange } from '../../../shared/weights/init.js';
import { neoxBatch, tinyNeoX } from './neox-helpers.js';

// The config, the parameter layout, the plan's gradient units and dropout-site names, and the feeds.

test('config: defaults, camelCase fields, unknown keys kept, HF export', () => {
  const c = parseNeoXConfig({ vocab_size: 100, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 256, torch_dtype: 'float16' });
  assert.equal(c.rotaryNdims, 4, 'int(16 * 0.25)');
  assert.equal(c.rotaryBase, 10000);
  assert.equal(c.layerNormEps, 1e-5);
  assert.equal(c.useParallelResidual, true);
  assert.equal(c.raw.torch_dtype, 'float16');
  assert.ok(Object.isFrozen(c));
  const json = neoxConfigJson(c);
  assert.deepEqual(json.architectures, ['GPTNeoXForCausalLM']);
  assert.equal(json.model_type, 'gpt_neox');
  assert.equal(json.torch_dtype, 'float16');
  // RoPE settings under newer transformers' names
  const base = { vocab_size: 100, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 256 };
  const renamed = parseNeoXConfig({ ...base, rope_theta: 500, partial_rotary_factor: 0.5 });
  assert.deepEqual([renamed.rotaryBase, renamed.rotaryNdims], [500, 8]);
  const nested = parseNeoXConfig({ ...base, rope_parameters: { rope_type: 'default', rope_theta: 700, partial_rotary_factor: 1 } });
  assert.deepEqual([nested.rotaryBase, nested.rotaryNdims], [700, 16]);
  assert.throws(() => parseNeoXConfig({ ...base, rope_scaling: { type: 'linear', factor: 2 } }), /RoPE scaling 'linear'/);
});

test('config: unsupported settings are refused naming the field', () => {
  const base = NEOX_PRESETS['neox-tiny']!;
  assert.throws(() => parseNeoXConfig({ ...base, hidden_act: 'gelu_new' }), (e: unknown) => e instanceof InputFileError && /hidden_act: 'gelu_new' is not supported/.test(e.message));
  assert.throws(() => parseNeoXConfig({ ...base, tie_word_embeddings: true }), /tie_word_embeddings/);
  assert.throws(() => parseNeoXConfig({ ...base, hidden_size: 30 }), /not a multiple/);
  assert.throws(() => parseNeoXConfig({ ...base, vocab_size: -1, num_hidden_layers: 0 }), (e: unknown) => e instanceof InputFileError && /vocab_size/.test(e.message) && /num_hidden_layers/.test(e.message));
});

test('polyglot-ko-1.3b: HF parameter names in named_parameters() order, 1,331,810,304 in all (the model card)', () => {
  const family = new NeoXFamily(parseNeoXConfig(NEOX_PRESETS['polyglot-ko-1.3b']));
  const specs = family.paramSpecs();
  assert.equal(specs.reduce((n, s) => n + numel(s.shape), 0), 1_331_810_304);
  assert.deepEqual(specs.slice(0, 14).map((s) => `${s.name} [${s.shape.join(',')}]`), [
    'gpt_neox.embed_in.weight [30080,2048]',
    'gpt_neox.layers.0.input_layernorm.weight [2048]',
    'gpt_neox.layers.0.input_layernorm.bias [2048]',
    'gpt_neox.layers.0.post_attention_layernorm.weight [2048]',
    'gpt_neox.layers.0.post_attention_layernorm.bias [2048]',
    'gpt_neox.layers.0.attention.query_key_value.weight [6144,2048]',
    'gpt_neox.layers.0.attention.query_key_value.bias [6144]',
    'gpt_neox.layers.0.attention.dense.weight [2048,2048]',
    'gpt_neox.layers.0.attention.dense.bias [2048]',
    'gpt_neox.layers.0.mlp.dense_h_to_4h.weight [8192,2048]',
    'gpt_neox.layers.0.mlp.dense_h_to_4h.bias [8192]',
    'gpt_neox.layers.0.mlp.dense_4h_to_h.weight [2048,8192]',
    'gpt_neox.layers.0.mlp.dense_4h_to_h.bias [2048]',
    'gpt_neox.layers.1.input_layernorm.weight [2048]',
  ]);
  assert.deepEqual(specs.slice(-3).map((s) => s.name), ['gpt_neox.final_layer_norm.weight', 'gpt_neox.final_layer_norm.bias', 'embed_out.weight']);
  // Old checkpoints' registered buffers are recognised as such, and no parameter is.
  for (const b of ['attention.bias', 'attention.masked_bias', 'attention.rotary_emb.inv_freq']) assert.ok(isNeoXCheckpointBuffer(`gpt_neox.layers.7.${b}`), b);
  assert.deepEqual(specs.filter((s) => isNeoXCheckpointBuffer(s.name)), []);
});

test('init follows _init_weights: weights N(0, 0.02), biases 0, LayerNorm weights 1', () => {
  const specs = new NeoXFamily(tinyNeoX()).paramSpecs();
  const layout = FlatLayout.fromSpecs(specs);
  const flat = initFlatRange(specs, layout, 3, 0, layout.totalSize);
  let sumSq = 0;
  let n = 0;
  for (const p of layout.params) {
    const v = layout.view(flat, p.name);
    if (p.name.endsWith('.bias')) assert.ok(v.every((x) => x === 0), p.name);
    else if (p.name.includes('layernorm') || p.name.includes('layer_norm')) assert.ok(v.every((x) => x === 1), p.name);
    else for (const x of v) (sumSq += x * x), n++;
  }
  // n ~ 38k draws: the sample std is within 2% of 0.02 with overwhelming probability.
  assert.ok(Math.abs(Math.sqrt(sumSq / n) / 0.02 - 1) < 0.02, `std ${Math.sqrt(sumSq / n)}`);
});

test('gradient units (params by moduleOf, completed by their first block) tile the layout from the end to the start', () => {
  const family = new NeoXFamily(tinyNeoX());
  const layout = FlatLayout.fromSpecs(family.paramSpecs());
  const plan = family.blockPlan();
  assert.deepEqual(plan.map((b) => b.label), ['gpt_neox.embed_in', 'gpt_neox.layers.0', 'gpt_neox.layers.1', 'embed_out']);
  const firstUser = new Map<string, number>();
  plan.forEach((b, i) => { for (const name of b.params.values()) if (!firstUser.has(name)) firstUser.set(name, i); });
  const completedBy = new Map<string, number>();
  for (const p of layout.params) {
    assert.ok(firstUser.has(p.name), `${p.name} is used by no block`);
    const m = family.moduleOf(p.name);
    completedBy.set(m, Math.min(completedBy.get(m) ?? Infinity, firstUser.get(p.name)!));
  }
  let end = layout.totalSize;
  for (let i = plan.length - 1; i >= 0; i--) {
    const names = layout.params.filter((p) => completedBy.get(family.moduleOf(p.name)) === i);
    assert.ok(names.length > 0, `block ${plan[i]!.label} completes a unit`);
    assert.equal(names.at(-1)!.offset + names.at(-1)!.size, end, `unit of ${plan[i]!.label} ends where the next one starts`);
    assert.equal(names.reduce((n, p) => n + p.size, 0), end - names[0]!.offset, 'contiguous');
    end = names[0]!.offset;
  }
  assert.equal(end, 0);
  assert.equal(family.moduleOf('gpt_neox.final_layer_norm.bias'), family.moduleOf('embed_out.weight'));
});

test('every block dropout site maps to a whole-model site (dropout.<sitePrefix><site>), each whole site once', () => {
  const config = tinyNeoX({ hidden_dropout: 0.1, attention_dropout: 0.1 });
  const family = new NeoXFamily(config, { r: 2, alpha: 4, targets: ['query_key_value'], dropout: 0.1 });
  const whole = family.wholeDropoutSites('float32').map((s) => s.input);
  const mapped: string[] = [];
  for (const block of family.blockPlan()) {
    for (const site of family.buildBlock(block.kind, { dtype: 'float32', dropout: true }).dropoutSites) {
      mapped.push(`dropout.${block.sitePrefix}${site.input.slice('dropout.'.length)}`);
    }
  }
  assert.deepEqual([...mapped].sort(), [...whole].sort());
  assert.ok(whole.includes('dropout.layers.1.attention.query_key_value.lora'));
  assert.equal(new Set(whole).size, whole.length);
  // Rates may differ: each site carries its own (the engine draws its masks at it).
  const mixed = new NeoXFamily(config, { r: 2, alpha: 4, targets: ['query_key_value'], dropout: 0.05 }).wholeDropoutSites('float32');
  assert.equal(mixed.find((s) => s.input === 'dropout.layers.1.attention.query_key_value.lora')!.rate, 0.05);
  assert.ok(mixed.filter((s) => !s.input.endsWith('.lora')).every((s) => s.rate === 0.1));
});

test('feeds: position ids from the mask, bad ids named', () => {
  const family = new NeoXFamily(tinyNeoX());
  const feeds = family.feeds(neoxBatch(), 'float64');
  assert.deepEqual([...(feeds.position_ids!.data as Int32Array)], [0, 1, 2, 3, 4, 0, 1, 2, 1, 1]);
  const bad = { ...neoxBatch(), inputIds: Int32Array.from([5, 6, 7, 8, 40, 10, 11, 12, 0, 0]) };
  assert.throws(() => family.feeds(bad, 'float64'), (e: unknown) => e instanceof EngineError && /input_ids\[0\]\[4\] = 40/.test(e.message));
  const badLabel = { ...neoxBatch(), labels: Int32Array.from([-100, 6, 7, 8, 9, 10, 11, 12, -100, -1]) };
  assert.throws(() => family.feeds(badLabel, 'float64'), /labels\[1\]\[4\] = -1/);
});

test('use_rslora: the adapter is scaled by lora_alpha / sqrt(r), the same function as lora_alpha\' = lora_alpha sqrt(r) / r without it', async () => {
  const { BlockEngine } = await import('../../../worker/engine/block-engine.js');
  const { initFlatRange } = await import('../../../shared/weights/init.js');
  const { FlatLayout } = await import('../../../shared/weights/flat-layout.js');
  const config = tinyNeoX();
  const r = 4;
  const rslora = NeoXFamily.withLora(config, { r, alpha: 8, dropout: 0, targetModules: ['query_key_value'], useRslora: true });
  // 8 / sqrt(4) = 4 = alpha' / 4 with alpha' = 16; a plain alpha 8 would give 2.
  const same = NeoXFamily.withLora(config, { r, alpha: 16, dropout: 0, targetModules: ['query_key_value'] });
  const other = NeoXFamily.withLora(config, { r, alpha: 8, dropout: 0, targetModules: ['query_key_value'] });
  const base = FlatLayout.fromSpecs(rslora.frozenSpecs());
  const frozen = Float64Array.from(initFlatRange(rslora.frozenSpecs(), base, 1, 0, base.totalSize));
  const adapters = FlatLayout.fromSpecs(rslora.paramSpecs());
  const values = Float64Array.from({ length: adapters.totalSize }, (_, i) => Math.sin(i) * 0.3); // B non-zero
  const loss = async (family: NeoXFamily) => {
    const engine = await BlockEngine.create(family, { dtype: 'float64', intraOpThreads: 1 }, frozen);
    try {
      return (await engine.forwardLoss(values, neoxBatch())).lossSum;
    } finally {
      await engine.release();
    }
  };
  const [a, b, c] = [await loss(rslora), await loss(same), await loss(other)];
  assert.equal(a, b);
  assert.notEqual(a, c);
});
