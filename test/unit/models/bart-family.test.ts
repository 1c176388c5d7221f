import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readModelFacts } from '../../../shared/config/model-type.js';
import { InputFileError, WeightsMismatchError } from '../../../shared/errors.js';
import { BART_PRESETS, bartConfigJson, parseBartConfig, type BartConfig } from '../../../shared/models/bart-config.js';
import { BartFamily } from '../../../shared/models/bart-family.js';
import { BART_LOGITS_BIAS, BART_SHARED, bartCheckpointSpecs } from '../../../shared/models/bart-params.js';
import { modelFamily, resolveModelSpec } from '../../../shared/models/model-spec.js';
import { numel } from '../../../shared/models/t5-params.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { loadHfWeights, saveBartModel } from '../../../shared/weights/hf-checkpoint.js';
import { initFlatRange } from '../../../shared/weights/init.js';
import { peftAdapterConfigJson } from '../../../shared/weights/peft-adapter.js';
import { readSafetensors, writeSafetensors } from '../../../shared/weights/safetensors.js';
import { gradientUnits } from '../../../worker/engine/block-plan.js';
import { tinyBart } from './bart-helpers.js';

// The config, the parameter layout against HF's tensor names and shapes, init, the HF folder
// (export and load), gradient units and the model_type plumbing.

/**
 * BartForConditionalGeneration's state_dict, one tensor per name (tied copies left out: HF
 * re-ties model.encoder/decoder.embed_tokens and lm_head to model.shared on load), written out
 * from modeling_bart's module tree, not from our specs: for d_model `d`, ffn dims `fe` (encoder)
 * and `fd` (decoder), vocab `v`, `p`
 * position rows (max_position_embeddings + 2), `e` encoder and `n` decoder layers.
 */
function hfTensorList(d: number, fe: number, fd: number, v: number, p: number, e: number, n: number): string[] {
  const attention = (prefix: string) => ['k_proj', 'v_proj', 'q_proj', 'out_proj'].flatMap((m) => [`${prefix}.${m}.weight [${d},${d}]`, `${prefix}.${m}.bias [${d}]`]);
  const norm = (name: string) => [`${name}.weight [${d}]`, `${name}.bias [${d}]`];
  const ffn = (prefix: string, f: number) => [`${prefix}.fc1.weight [${f},${d}]`, `${prefix}.fc1.bias [${f}]`, `${prefix}.fc2.weight [${d},${f}]`, `${prefix}.fc2.bias [${d}]`, ...norm(`${prefix}.final_layer_norm`)];
  const out = [`final_logits_bias [1,${v}]`, `model.shared.weight [${v},${d}]`];
  out.push(`model.encoder.embed_positions.weight [${p},${d}]`);
  for (let i = 0; i < e; i++) {
    const l = `model.encoder.layers.${i}`;
    out.push(...attention(`${l}.self_attn`), ...norm(`${l}.self_attn_layer_norm`), ...ffn(l, fe));
  }
  out.push(...norm('model.encoder.layernorm_embedding'), `model.decoder.embed_positions.weight [${p},${d}]`);
  for (let i = 0; i < n; i++) {
    const l = `model.decoder.layers.${i}`;
    out.push(...attention(`${l}.self_attn`), ...norm(`${l}.self_attn_layer_norm`), ...attention(`${l}.encoder_attn`), ...norm(`${l}.encoder_attn_layer_norm`), ...ffn(l, fd));
  }
  out.push(...norm('model.decoder.layernorm_embedding'));
  return out.sort();
}

const listOf = (specs: readonly { name: string; shape: readonly number[] }[]) => specs.map((s) => `${s.name} [${s.shape.join(',')}]`).sort();

test('kobart-news: our tensors are exactly HF BartForConditionalGeneration\'s names and shapes (no allocation), 123,859,968 parameters', () => {
  const config = parseBartConfig(BART_PRESETS['kobart-news']);
  assert.equal(config.positionRows, 1028, 'max_position_embeddings 1026 + the offset 2');
  const specs = bartCheckpointSpecs(config);
  assert.deepEqual(listOf(specs), hfTensorList(768, 3072, 3072, 30000, 1028, 6, 6));
  // 23,040,000 (shared) + 2 x 789,504 (positions) + 2 x 1,536 (layernorm_embedding)
  // + 6 x 7,087,872 (encoder layer) + 6 x 9,451,776 (decoder layer): KoBART's "124M".
  const trainable = new BartFamily(config).paramSpecs();
  assert.equal(trainable.reduce((s, p) => s + numel(p.shape), 0), 123_859_968);
  assert.ok(!trainable.some((s) => s.name === BART_LOGITS_BIAS), 'the buffer is not trained');
});

test('config: defaults, HF export, and the switches of other networks refused by field name', () => {
  const c = tinyBart();
  assert.equal(c.embedScale, 4, 'sqrt(16) with scale_embedding');
  assert.equal(c.forcedBosTokenId, null);
  assert.equal(c.forcedEosTokenId, 1);
  assert.ok(Object.isFrozen(c));
  const json = bartConfigJson(c);
  assert.deepEqual(json.architectures, ['BartForConditionalGeneration']);
  assert.equal(json.model_type, 'bart');
  const base = BART_PRESETS['bart-tiny']!;
  const refused = (over: Record<string, unknown>, field: RegExp) =>
    assert.throws(() => parseBartConfig({ ...base, ...over }, 'dir/config.json'), (e: unknown) => e instanceof InputFileError && /dir\/config\.json/.test(e.message) && field.test(e.message));
  refused({ activation_function: 'gelu_new' }, /activation_function: 'gelu_new' is not supported/);
  refused({ normalize_before: true }, /normalize_before/);
  refused({ add_final_layer_norm: true }, /add_final_layer_norm/);
  refused({ normalize_embedding: false }, /normalize_embedding/);
  refused({ add_bias_logits: true }, /add_bias_logits/);
  refused({ extra_pos_embeddings: 0 }, /extra_pos_embeddings/);
  refused({ do_blenderbot_90_layernorm: true }, /do_blenderbot_90_layernorm/);
  // KoBART's own config.json keys (fairseq-era switches at BART's values, generation and label keys) parse
  assert.equal(parseBartConfig({ ...BART_PRESETS['kobart-news'], extra_pos_embeddings: 2, normalize_embedding: true, do_blenderbot_90_layernorm: false, static_position_embeddings: false, force_bos_token_to_be_generated: false, kobart_version: 1.0, id2label: { 0: 'NEGATIVE', 1: 'POSITIVE' } }).positionRows, 1028);
  refused({ decoder_attention_heads: 5 }, /decoder_attention_heads/);
  refused({ pad_token_id: 259 }, /pad_token_id: 259 is outside the vocabulary/);
  // zod: every bad field at once
  assert.throws(() => parseBartConfig({ ...base, d_model: -1, encoder_layers: 'six' }), (e: unknown) => e instanceof InputFileError && /d_model/.test(e.message) && /encoder_layers/.test(e.message));
});

test('init follows _init_weights: N(0, init_std), padding row of model.shared zero, biases 0, LayerNorm weights 1', () => {
  const config = parseBartConfig({ ...BART_PRESETS['bart-tiny'], pad_token_id: 5 });
  const specs = new BartFamily(config).paramSpecs();
  const layout = FlatLayout.fromSpecs(specs);
  const flat = initFlatRange(specs, layout, 3, 0, layout.totalSize);
  let sumSq = 0;
  let n = 0;
  for (const p of layout.params) {
    const v = layout.view(flat, p.name);
    if (p.name.endsWith('.bias')) assert.ok(v.every((x) => x === 0), p.name);
    else if (/layer_?norm[^.]*\.weight$|layernorm_embedding\.weight$/u.test(p.name)) assert.ok(v.every((x) => x === 1), p.name);
    else if (p.name === BART_SHARED) {
      const d = config.dModel;
      assert.ok(v.subarray(5 * d, 6 * d).every((x) => x === 0), 'padding_idx row');
      assert.ok(v.subarray(4 * d, 5 * d).some((x) => x !== 0) && v.subarray(6 * d, 7 * d).some((x) => x !== 0), 'neighbouring rows drawn');
    } else for (const x of v) (sumSq += x * x), n++;
  }
  assert.ok(Math.abs(Math.sqrt(sumSq / n) - 0.02) < 0.001, `std ${Math.sqrt(sumSq / n)} over ${n} draws`);
  // Any element range gives the same bits (ZeRO ranks initialise their own slices).
  const off = layout.get(BART_SHARED).offset + 5 * config.dModel - 3;
  assert.deepEqual(initFlatRange(specs, layout, 3, off, off + 40), flat.subarray(off, off + 40));
});

test('gradient units tile the flat layout end to start (prelude tensors adjacent), with and without LoRA', () => {
  for (const lora of [null, { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'v_proj'] }]) {
    const family = new BartFamily(tinyBart(), lora);
    const layout = FlatLayout.fromSpecs(family.paramSpecs());
    const units = gradientUnits(family.blockPlan(), layout, (name) => family.moduleOf(name));
    assert.equal(units[0]!.hi, layout.totalSize);
    assert.equal(units.at(-1)!.lo, 0);
    if (!lora) {
      assert.deepEqual(units.at(-1)!.params, [BART_SHARED, 'model.encoder.embed_positions.weight', 'model.encoder.layernorm_embedding.weight', 'model.encoder.layernorm_embedding.bias']);
      assert.equal(units.length, 1 + 2 + 1 + 2, 'encoder prelude + shared, 2 encoder layers, decoder prelude, 2 decoder layers');
    } else assert.equal(units.length, 4, 'one unit per adapted layer');
    // The frozen tensors (the buffer; the base under LoRA) form units the same way.
    const frozen = FlatLayout.fromSpecs(family.frozenSpecs());
    const frozenUnits = gradientUnits(family.blockPlan(), frozen, (name) => family.moduleOf(name));
    assert.deepEqual(frozenUnits[0]!.params, [BART_LOGITS_BIAS]);
  }
});

test('model_type bart: presets and HF folders resolve to BartFamily; LoRA targets outside the layers are refused', async () => {
  const spec = resolveModelSpec('preset:bart-tiny');
  assert.equal(spec.modelType, 'bart');
  assert.ok(modelFamily(spec) instanceof BartFamily);
  assert.equal(modelFamily(spec).vocabSize, 259, 'the byte tokenizer');
  const dir = await mkdtemp(join(tmpdir(), 'bart-spec-'));
  try {
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...BART_PRESETS['bart-tiny'], model_type: 'bart' }));
    // the run config's model facts: the family, and d_model for DeepSpeed's "auto" bucket sizes
    assert.deepEqual(readModelFacts(dir), { modelType: 'bart', hiddenSize: 32 });
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...BART_PRESETS['bart-tiny'], model_type: 'bart', normalize_before: true }));
    assert.throws(() => resolveModelSpec(dir), /normalize_before/);
  } finally {
    await rm(dir, { recursive: true });
  }
  assert.throws(() => new BartFamily(tinyBart(), { r: 2, alpha: 4, dropout: 0, targetModules: ['shared'] }), /not an nn\.Linear|not supported/);
  // A BART adapter is PEFT's SEQ_2_SEQ_LM (PeftModelForSeq2SeqLM), as T5's.
  const settings = { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'v_proj'] };
  assert.equal(peftAdapterConfigJson(settings, 'bart', 'preset:bart-tiny').task_type, 'SEQ_2_SEQ_LM');
});

/** A small config's folder: our export, read back as raw safetensors. */
async function exported(config: BartConfig, dir: string, seed: number) {
  const specs = new BartFamily(config).paramSpecs();
  const layout = FlatLayout.fromSpecs(specs);
  const flat = initFlatRange(specs, layout, seed, 0, layout.totalSize);
  const bias = Float32Array.from({ length: config.vocabSize }, (_, i) => i / 100);
  await saveBartModel(dir, config, flat, bias);
  return { layout, flat, bias, file: await readSafetensors(join(dir, 'model.safetensors')) };
}

test('export: the folder holds exactly HF\'s names and shapes (final_logits_bias written, no tied copies) and loads back bit for bit', async () => {
  const config = tinyBart({ encoder_layers: 1, decoder_layers: 2 });
  const dir = await mkdtemp(join(tmpdir(), 'bart-export-'));
  try {
    const { layout, flat, bias, file } = await exported(config, dir, 7);
    const stored = [...file.tensors].map(([name, t]) => `${name} [${t.info.shape.join(',')}]`).sort();
    assert.deepEqual(stored, hfTensorList(16, 24, 32, 40, 14, 1, 2));
    assert.equal(file.metadata.format, 'pt');
    assert.deepEqual(file.tensors.get(BART_LOGITS_BIAS)!.data, bias);
    const json = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(json.model_type, 'bart');
    assert.deepEqual(json.architectures, ['BartForConditionalGeneration']);
    // load: trainable layout and the frozen buffer layout from the same folder
    assert.deepEqual(await loadHfWeights(dir, 'bart', layout), flat);
    const family = new BartFamily(config);
    assert.deepEqual(await loadHfWeights(dir, 'bart', FlatLayout.fromSpecs(family.frozenSpecs())), bias);
    // under LoRA the frozen layout is the base plus the buffer
    const lora = new BartFamily(config, { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj'] });
    const base = await loadHfWeights(dir, 'bart', FlatLayout.fromSpecs(lora.frozenSpecs()));
    assert.deepEqual(base.subarray(0, flat.length), flat);
    assert.deepEqual(base.subarray(flat.length), bias);
  } finally {
    await rm(dir, { recursive: true });
  }
});

test('load: tied aliases stand for model.shared, a missing final_logits_bias is zeros, unknown or disagreeing tensors are refused', async () => {
  const config = tinyBart({ encoder_layers: 1, decoder_layers: 1 });
  const dir = await mkdtemp(join(tmpdir(), 'bart-load-'));
  try {
    const { layout, flat, file } = await exported(config, dir, 9);
    const rewrite = async (edit: (t: Map<string, Float32Array>) => void) => {
      const tensors = new Map([...file.tensors].map(([n, t]) => [n, t.data as Float32Array]));
      edit(tensors);
      const shapes = new Map([...file.tensors].map(([n, t]) => [n, t.info.shape]));
      await writeSafetensors(join(dir, 'model.safetensors'), [...tensors].map(([name, data]) => ({ name, dtype: 'F32' as const, shape: shapes.get(name) ?? shapes.get(BART_SHARED)!, data })), { format: 'pt' });
    };
    const shared = file.tensors.get(BART_SHARED)!.data as Float32Array;
    // HF's older files: the embedding stored as the encoder's embed_tokens plus the decoder's and lm_head copies; no buffer
    await rewrite((t) => {
      t.delete(BART_SHARED);
      t.delete(BART_LOGITS_BIAS);
      for (const a of ['model.encoder.embed_tokens.weight', 'model.decoder.embed_tokens.weight', 'lm_head.weight']) t.set(a, shared);
    });
    assert.deepEqual(await loadHfWeights(dir, 'bart', layout), flat);
    const family = new BartFamily(config);
    assert.deepEqual(await loadHfWeights(dir, 'bart', FlatLayout.fromSpecs(family.frozenSpecs())), new Float32Array(config.vocabSize));
    await rewrite((t) => t.set('lm_head.weight', shared.map((x) => x + 1)));
    await assert.rejects(loadHfWeights(dir, 'bart', layout), (e: unknown) => e instanceof WeightsMismatchError && /lm_head\.weight' is tied/.test(e.message));
    await rewrite((t) => {
      t.set('lm_head.weight', shared);
      t.set('model.encoder.layers.0.extra.weight', shared);
    });
    await assert.rejects(loadHfWeights(dir, 'bart', layout), /1 unexpected: model\.encoder\.layers\.0\.extra\.weight/);
  } finally {
    await rm(dir, { recursive: true });
  }
});
