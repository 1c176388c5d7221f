import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { InputFileError, WeightsMismatchError } from '../../../shared/errors.js';
import { T5_PRESETS } from '../../../shared/models/presets.js';
import { parseT5Config, type T5ConfigInput } from '../../../shared/models/t5-config.js';
import { t5ParamSpecs } from '../../../shared/models/t5-params.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { loadHfModel, resolveModelConfig, saveHfModel } from '../../../shared/weights/hf-checkpoint.js';
import { initT5Flat } from '../../../shared/weights/init.js';
import { readSafetensors, writeSafetensors, type WritableTensor } from '../../../shared/weights/safetensors.js';

const root = mkdtempSync(join(tmpdir(), 'kp-hf-'));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const freshDir = (): string => {
  const d = join(root, `m${counter++}`);
  mkdirSync(d);
  return d;
};

const TINY: T5ConfigInput = T5_PRESETS['t5-tiny']!;
const TINY_TIED: T5ConfigInput = { ...TINY, tie_word_embeddings: true };

function model(input: T5ConfigInput, seed = 1) {
  const config = parseT5Config(input);
  const layout = FlatLayout.fromSpecs(t5ParamSpecs(config));
  return { config, layout, flat: initT5Flat(config, layout, seed) };
}

const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** A model dir written by hand: config.json plus model.safetensors holding exactly `tensors`. */
async function handDir(config: T5ConfigInput, tensors: WritableTensor[]): Promise<string> {
  const dir = freshDir();
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  return dir;
}

/** The tensors saveHfModel would write, as a mutable list to tamper with. */
function tensorsOf(m: ReturnType<typeof model>): WritableTensor[] {
  return m.layout.params.map((p) => ({ name: p.name, dtype: 'F32', shape: p.shape, data: m.layout.view(m.flat, p.name) }));
}

async function rejectsMismatch(dir: string, ...patterns: RegExp[]): Promise<void> {
  await assert.rejects(loadHfModel(dir), (e: unknown) => {
    assert.ok(e instanceof WeightsMismatchError, `expected WeightsMismatchError, got ${String(e)}`);
    assert.ok(e.message.includes(join(dir, 'model.safetensors')), `names the file: ${e.message}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

test('saveHfModel -> loadHfModel is bit-identical, config included', async () => {
  const m = model(TINY, 5);
  m.flat[0] = -0;
  m.flat[1] = 1e-45; // subnormal
  const dir = join(freshDir(), 'nested', 'out'); // created on demand
  await saveHfModel(dir, m.config, m.flat);
  assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'model.safetensors'], 'no temp files left');
  const loaded = await loadHfModel(dir);
  assert.deepEqual(bits(loaded.flat), bits(m.flat));
  assert.deepEqual(loaded.layout.params.map((p) => p.name), m.layout.params.map((p) => p.name));
  const { raw: _a, ...want } = m.config;
  const { raw: _b, ...got } = loaded.config;
  assert.deepEqual(got, want);

  const json = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(json.architectures, ['T5ForConditionalGeneration']);
  assert.equal(json.model_type, 't5');
  assert.equal(json.torch_dtype, 'float32');
  const file = await readSafetensors(join(dir, 'model.safetensors'));
  assert.deepEqual(file.metadata, { format: 'pt' }); // transformers refuses safetensors without it
  assert.ok([...file.tensors.values()].every((t) => t.info.dtype === 'F32'));
});

test('a tied model is saved with shared.weight only, and loads back', async () => {
  const m = model(TINY_TIED, 2);
  const dir = freshDir();
  await saveHfModel(dir, m.config, m.flat);
  const names = [...(await readSafetensors(join(dir, 'model.safetensors'))).tensors.keys()];
  assert.ok(names.includes('shared.weight'));
  assert.ok(!names.some((n) => n === 'lm_head.weight' || n.endsWith('embed_tokens.weight')));
  assert.deepEqual(bits((await loadHfModel(dir)).flat), bits(m.flat));
});

test('a tied alias may be the only stored copy of shared.weight', async () => {
  const m = model(TINY_TIED, 3);
  for (const alias of ['encoder.embed_tokens.weight', 'decoder.embed_tokens.weight', 'lm_head.weight']) {
    const tensors = tensorsOf(m).map((t) => (t.name === 'shared.weight' ? { ...t, name: alias } : t));
    const loaded = await loadHfModel(await handDir(TINY_TIED, tensors));
    assert.deepEqual(bits(loaded.flat), bits(m.flat), alias);
  }
});

test('extra stored copies of a tied embedding are accepted when equal, refused when different', async () => {
  const m = model(TINY_TIED, 4);
  const shared = m.layout.view(m.flat, 'shared.weight');
  const copy = (name: string, data = shared): WritableTensor => ({ name, dtype: 'F32', shape: m.layout.get('shared.weight').shape, data });
  const ok = await handDir(TINY_TIED, [...tensorsOf(m), copy('encoder.embed_tokens.weight'), copy('lm_head.weight')]);
  assert.deepEqual(bits((await loadHfModel(ok)).flat), bits(m.flat));

  const other = shared.slice();
  other[7]! += 1;
  const bad = await handDir(TINY_TIED, [...tensorsOf(m), copy('decoder.embed_tokens.weight', other)]);
  await rejectsMismatch(bad, /'decoder\.embed_tokens\.weight' is tied to 'shared\.weight' but holds different values/);

  // Untied (pko-t5 style): embed_tokens copies still alias shared.weight; lm_head is its own parameter.
  const u = model(TINY, 4);
  const uShared = u.layout.view(u.flat, 'shared.weight');
  const withCopy = await handDir(TINY, [...tensorsOf(u), { name: 'encoder.embed_tokens.weight', dtype: 'F32', shape: u.layout.get('shared.weight').shape, data: uShared }]);
  assert.deepEqual(bits((await loadHfModel(withCopy)).flat), bits(u.flat));
});

test('without tie_word_embeddings, lm_head.weight is required', async () => {
  const m = model(TINY, 6);
  const dir = await handDir(TINY, tensorsOf(m).filter((t) => t.name !== 'lm_head.weight'));
  await rejectsMismatch(dir, /1 missing: lm_head\.weight/);
});

test('mismatches are reported together: missing, unexpected, shape (expected vs got), dtype', async () => {
  const m = model(TINY, 7);
  const tensors = tensorsOf(m)
    .filter((t) => t.name !== 'encoder.block.1.layer.1.DenseReluDense.wo.weight' && t.name !== 'shared.weight')
    .map((t): WritableTensor => (t.name === 'decoder.final_layer_norm.weight' ? { ...t, shape: [2, 16] } : t))
    .map((t): WritableTensor => (t.name === 'encoder.final_layer_norm.weight' ? { name: t.name, dtype: 'I64', shape: t.shape, data: new BigInt64Array(32) } : t));
  tensors.push({ name: 'encoder.block.9.extra.weight', dtype: 'F32', shape: [1], data: new Float32Array(1) });
  const dir = await handDir(TINY, tensors);
  await rejectsMismatch(
    dir,
    /2 missing: shared\.weight \(or a tied alias: encoder\.embed_tokens\.weight, decoder\.embed_tokens\.weight\), encoder\.block\.1\.layer\.1\.DenseReluDense\.wo\.weight/,
    /1 unexpected: encoder\.block\.9\.extra\.weight/,
    /1 shape mismatches: decoder\.final_layer_norm\.weight: expected \[32\], got \[2, 16\]/,
    /1 not float tensors: encoder\.final_layer_norm\.weight: I64/,
  );
});

test('a checkpoint for a different config fails on shapes, naming each tensor', async () => {
  const bigger = model({ ...TINY, d_ff: 96 }, 1);
  const dir = await handDir(TINY, tensorsOf(bigger));
  await rejectsMismatch(dir, /shape mismatches: encoder\.block\.0\.layer\.1\.DenseReluDense\.wi_0\.weight: expected \[64, 32\], got \[96, 32\]/);
});

test('the unused cross-attention bias of original T5 checkpoints is ignored, as transformers does', async () => {
  const m = model(TINY, 8);
  const stray: WritableTensor = { name: 'decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight', dtype: 'F32', shape: [32, 4], data: new Float32Array(128) };
  const loaded = await loadHfModel(await handDir(TINY, [...tensorsOf(m), stray]));
  assert.deepEqual(bits(loaded.flat), bits(m.flat));
});

test('flatLength pads the buffer with zeros (ZeRO padding)', async () => {
  const m = model(TINY, 9);
  const dir = freshDir();
  await saveHfModel(dir, m.config, m.flat);
  const loaded = await loadHfModel(dir, { flatLength: m.layout.totalSize + 3 });
  assert.equal(loaded.flat.length, m.layout.totalSize + 3);
  assert.deepEqual(bits(loaded.flat.subarray(0, m.layout.totalSize)), bits(m.flat));
  assert.deepEqual([...loaded.flat.subarray(m.layout.totalSize)], [0, 0, 0]);
  await assert.rejects(loadHfModel(dir, { flatLength: 5 }), RangeError);
  // A padded buffer saves as the unpadded model; a short one is refused.
  const padded = new Float32Array(m.layout.totalSize + 8);
  padded.set(m.flat);
  const again = freshDir();
  await saveHfModel(again, m.config, padded);
  assert.deepEqual(bits((await loadHfModel(again)).flat), bits(m.flat));
  await assert.rejects(saveHfModel(freshDir(), m.config, m.flat.subarray(1)), WeightsMismatchError);
});

test('missing files are named: config.json, or weights of any supported kind', async () => {
  const noConfig = freshDir();
  await assert.rejects(loadHfModel(noConfig), (e: unknown) => e instanceof InputFileError && e.message.startsWith(join(noConfig, 'config.json')));
  const noWeights = freshDir();
  writeFileSync(join(noWeights, 'config.json'), JSON.stringify(TINY));
  writeFileSync(join(noWeights, 'pytorch_model.bin'), 'pickle');
  await assert.rejects(loadHfModel(noWeights), (e: unknown) => e instanceof InputFileError && e.message.startsWith(noWeights) && /no model\.safetensors or model\.safetensors\.index\.json/.test(e.message));
});

/** Split a saved model dir's tensors over two shard files with an index, as transformers does. */
async function shard(m: ReturnType<typeof model>, index?: (files: string[]) => unknown): Promise<string> {
  const dir = freshDir();
  writeFileSync(join(dir, 'config.json'), JSON.stringify(TINY));
  const all = tensorsOf(m);
  const half = Math.floor(all.length / 2);
  const files = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  await writeSafetensors(join(dir, files[0]!), all.slice(0, half), { format: 'pt' });
  await writeSafetensors(join(dir, files[1]!), all.slice(half), { format: 'pt' });
  const weightMap = Object.fromEntries(all.map((t, i) => [t.name, files[i < half ? 0 : 1]]));
  const doc = index ? index(files) : { metadata: { total_size: m.layout.totalSize * 4 }, weight_map: weightMap };
  writeFileSync(join(dir, 'model.safetensors.index.json'), typeof doc === 'string' ? doc : JSON.stringify(doc));
  return dir;
}

test('a sharded checkpoint (model.safetensors.index.json) loads like a single file', async () => {
  const m = model(TINY, 10);
  const dir = await shard(m);
  assert.deepEqual(bits((await loadHfModel(dir)).flat), bits(m.flat));
});

test('sharded index errors name the index and the tensor or field', async () => {
  const m = model(TINY, 11);
  const indexOf = (dir: string) => join(dir, 'model.safetensors.index.json');
  const names = m.layout.params.map((p) => p.name);
  const wrongFile = await shard(m, (f) => ({ weight_map: { ...Object.fromEntries(names.map((n) => [n, f[0]])) } }));
  await assert.rejects(loadHfModel(wrongFile), (e: unknown) => e instanceof InputFileError && e.message.startsWith(indexOf(wrongFile)) && /weight_map\.\S+: names model-00001-of-00002\.safetensors, but that shard has no such tensor/.test(e.message));
  const escape = await shard(m, () => ({ weight_map: { 'shared.weight': '../elsewhere.safetensors' } }));
  await assert.rejects(loadHfModel(escape), /weight_map\.shared\.weight: must be a file name inside the checkpoint directory/);
  const empty = await shard(m, () => ({ weight_map: {} }));
  await assert.rejects(loadHfModel(empty), /weight_map: must list at least one tensor/);
  const badJson = await shard(m, () => '{"weight_map": ');
  await assert.rejects(loadHfModel(badJson), (e: unknown) => e instanceof InputFileError && e.message.startsWith(indexOf(badJson)) && /not valid JSON/.test(e.message));
  const missingShard = await shard(m, () => ({ weight_map: { 'shared.weight': 'model-00003-of-00003.safetensors' } }));
  await assert.rejects(loadHfModel(missingShard), /model-00003-of-00003\.safetensors: cannot open/);

  // The same tensor stored in two shards.
  const dup = await shard(m);
  const first = (await readSafetensors(join(dup, 'model-00001-of-00002.safetensors'))).tensors.get('shared.weight')!;
  const second = (await readSafetensors(join(dup, 'model-00002-of-00002.safetensors'))).tensors;
  await writeSafetensors(join(dup, 'model-00002-of-00002.safetensors'), [
    ...[...second.values()].map((t): WritableTensor => ({ name: t.info.name, dtype: 'F32', shape: t.info.shape, data: t.data as Float32Array })),
    { name: 'shared.weight', dtype: 'F32', shape: first.info.shape, data: first.data as Float32Array },
  ]);
  await assert.rejects(loadHfModel(dup), /tensor 'shared\.weight': stored twice/);
});

test('resolveModelConfig accepts preset:<name>, a model directory or a config file', async () => {
  assert.equal(resolveModelConfig('preset:t5-tiny').dModel, 32);
  assert.equal(resolveModelConfig('preset:pko-t5-base').vocabSize, 50358);
  assert.throws(() => resolveModelConfig('preset:t5-huge'), (e: unknown) => e instanceof InputFileError && /unknown preset 't5-huge' \(known: t5-tiny, t5-small-bytes, pko-t5-base\)/.test(e.message));
  const dir = freshDir();
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...TINY, d_model: 48 }));
  assert.equal(resolveModelConfig(dir).dModel, 48);
  assert.equal(resolveModelConfig(join(dir, 'config.json')).dModel, 48);
  assert.throws(() => resolveModelConfig(join(dir, 'absent')), (e: unknown) => e instanceof InputFileError && /no such model directory or config file/.test(e.message));
  writeFileSync(join(dir, 'bad.json'), JSON.stringify({ ...TINY, d_model: -1 }));
  assert.throws(() => resolveModelConfig(join(dir, 'bad.json')), (e: unknown) => e instanceof InputFileError && /bad\.json.*d_model/.test(e.message));
});
