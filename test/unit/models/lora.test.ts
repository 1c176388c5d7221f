import test from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_LORA_TARGETS, initLoraFlat, initLoraFlatRange, LoraConfigError, loraParamCount, loraParamSpecs, loraScale, matchesTarget,
} from '../../../shared/models/lora.js';
import { numel, t5ParamSpecs } from '../../../shared/models/t5-params.js';
import { tinyConfig } from './t5-helpers.js';

const T5 = { r: 4, alpha: 8, dropout: 0.1, targetModules: DEFAULT_LORA_TARGETS.t5 };

test('PEFT target matching: equal, or ending with .<target>', () => {
  assert.ok(matchesTarget('encoder.block.0.layer.0.SelfAttention.q', 'q'));
  assert.ok(matchesTarget('encoder.block.0.layer.0.SelfAttention.q', 'SelfAttention.q'));
  assert.ok(matchesTarget('lm_head', 'lm_head'));
  assert.ok(!matchesTarget('encoder.block.0.layer.0.SelfAttention.qq', 'q'));
  assert.ok(!matchesTarget('encoder.block.0.layer.0.SelfAttention.q', 'Attention.q'));
});

test('T5 adapter specs: PEFT names, base order, A [r, in] then B [out, r] per module', () => {
  const config = tinyConfig();
  const specs = loraParamSpecs(t5ParamSpecs(config), T5, 't5');
  const inner = config.numHeads * config.dKv;
  assert.deepEqual(specs.slice(0, 4).map((s) => [s.name, s.shape]), [
    ['base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight', [4, config.dModel]],
    ['base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_B.weight', [inner, 4]],
    ['base_model.model.encoder.block.0.layer.0.SelfAttention.v.lora_A.weight', [4, config.dModel]],
    ['base_model.model.encoder.block.0.layer.0.SelfAttention.v.lora_B.weight', [inner, 4]],
  ]);
  // q, v of every encoder self-attention and of every decoder self- and cross-attention.
  assert.equal(specs.length, 2 * 2 * (config.numEncoderLayers + 2 * config.numDecoderLayers));
  assert.equal(specs.at(-1)!.name, `base_model.model.decoder.block.${config.numDecoderLayers - 1}.layer.1.EncDecAttention.v.lora_B.weight`);
  assert.equal(specs[0]!.baseWeight, 'encoder.block.0.layer.0.SelfAttention.q.weight');
  // Base order: module order of named_parameters (encoder before decoder, SelfAttention before EncDecAttention).
  const order = t5ParamSpecs(config).map((s) => s.name);
  const positions = specs.filter((s) => s.role === 'A').map((s) => order.indexOf(s.baseWeight));
  assert.deepEqual(positions, [...positions].sort((a, b) => a - b));
  assert.equal(loraScale(T5), 2);
});

test('GPT-NeoX style names: query_key_value adapted, biases and embeddings not', () => {
  const h = 16;
  const base = [
    { name: 'gpt_neox.embed_in.weight', shape: [50, h] },
    { name: 'gpt_neox.layers.0.input_layernorm.weight', shape: [h] },
    { name: 'gpt_neox.layers.0.input_layernorm.bias', shape: [h] },
    { name: 'gpt_neox.layers.0.attention.query_key_value.weight', shape: [3 * h, h] },
    { name: 'gpt_neox.layers.0.attention.query_key_value.bias', shape: [3 * h] },
    { name: 'gpt_neox.layers.0.attention.dense.weight', shape: [h, h] },
    { name: 'embed_out.weight', shape: [50, h] },
  ];
  const specs = loraParamSpecs(base, { r: 2, alpha: 4, dropout: 0, targetModules: DEFAULT_LORA_TARGETS.gpt_neox }, 'gpt_neox');
  assert.deepEqual(specs.map((s) => [s.name, s.shape]), [
    ['base_model.model.gpt_neox.layers.0.attention.query_key_value.lora_A.weight', [2, h]],
    ['base_model.model.gpt_neox.layers.0.attention.query_key_value.lora_B.weight', [3 * h, 2]],
  ]);
  assert.throws(() => loraParamSpecs(base, { r: 2, alpha: 4, dropout: 0, targetModules: ['embed_in'] }, 'gpt_neox'), /not an nn\.Linear/u);
});

test('bad targets and settings are refused with the target or field named', () => {
  const specs = t5ParamSpecs(tinyConfig());
  assert.throws(() => loraParamSpecs(specs, { ...T5, targetModules: ['q', 'query_key_value'] }, 't5'), (e) => e instanceof LoraConfigError && /'query_key_value' matches no module/u.test(e.message));
  assert.throws(() => loraParamSpecs(specs, { ...T5, targetModules: ['shared'] }, 't5'), /'shared' matches shared, which is not an nn\.Linear/u);
  assert.throws(() => loraParamSpecs(specs, { ...T5, targetModules: ['layer_norm'] }, 't5'), /not an nn\.Linear/u);
  assert.throws(() => loraParamSpecs(specs, { ...T5, r: 0 }, 't5'), /r: /u);
  assert.throws(() => loraParamSpecs(specs, { ...T5, dropout: 1 }, 't5'), /dropout: /u);
});

test('adapter init: A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0, any range equals the slice of the whole', () => {
  const config = tinyConfig();
  const specs = loraParamSpecs(t5ParamSpecs(config), T5, 't5');
  const flat = initLoraFlat(specs, 42);
  assert.equal(flat.length, loraParamCount(specs));
  let o = 0;
  for (const s of specs) {
    const v = flat.subarray(o, o + numel(s.shape));
    if (s.role === 'B') assert.ok(v.every((x) => x === 0), s.name);
    else {
      const bound = 1 / Math.sqrt(config.dModel);
      assert.ok(v.every((x) => Math.abs(x) <= bound), s.name);
      // 128 draws of U(-b, b): the max |x| is above b/2 with probability 1 - 2^-128.
      assert.ok(v.reduce((m, x) => Math.max(m, Math.abs(x)), 0) > bound / 2, s.name);
    }
    o += numel(s.shape);
  }
  assert.notDeepEqual(initLoraFlat(specs, 43), flat, 'the seed matters');
  for (const [b, e] of [[0, 1], [3, 300], [127, 129], [flat.length - 5, flat.length]] as const) {
    assert.deepEqual(initLoraFlatRange(specs, 42, b, e), flat.subarray(b, e), `[${b}, ${e})`);
  }
  const a0 = flat.subarray(0, numel(specs[0]!.shape));
  const a1 = flat.subarray(numel(specs[0]!.shape) + numel(specs[1]!.shape)).subarray(0, a0.length);
  assert.notDeepEqual(a0, a1, 'each adapter has its own stream');
});
