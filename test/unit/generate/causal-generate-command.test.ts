import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CausalGenerator } from '../../../shared/generate/causal-generator.js';
import { causalKeyphrases } from '../../../shared/generate/keyphrase-postprocess.js';
import { loadGenerationModel } from '../../../shared/generate/load-generation-model.js';
import { initLoraFlat, loraParamSpecs } from '../../../shared/models/lora.js';
import { NEOX_PRESETS, neoxConfigJson, parseNeoXConfig } from '../../../shared/models/neox-config.js';
import { neoxParamSpecs } from '../../../shared/models/neox-params.js';
import { ByteTokenizer } from '../../../shared/tokenizer/byte-tokenizer.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { mergedWeights, readPeftAdapter, writePeftAdapter } from '../../../shared/weights/peft-adapter.js';
import { writeSafetensors } from '../../../shared/weights/safetensors.js';
import { SAFE_WEIGHTS_NAME } from '../../../shared/weights/sharded-index.js';
import { REPO_ROOT } from '../../helpers/sample-cache.js';
import { randomValues } from '../models/neox-helpers.js';

// `kp-coord generate` with GPT-NeoX models, as a user runs it: an HF folder of neox-tiny, a PEFT
// adapter folder over it (decoded merged), and a preset-based adapter with no run seed (refused).
// Each output is checked against the API: the prompt is input_prefix + article + target prefix
// (trimmed, as a causal cache stores it), byte ids, CausalGenerator greedy, decoded and cut by
// causalKeyphrases.

const CLI = join(REPO_ROOT, 'dist', 'coordinator', 'cli', 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'kp-generate-neox-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function kp(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, KPCOORD_LOG_LEVEL: 'warn' }, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const config = parseNeoXConfig(NEOX_PRESETS['neox-tiny']);
const specs = neoxParamSpecs(config);
const layout = FlatLayout.fromSpecs(specs);

/** neox-tiny with N(0, 0.3) weights (not HF's 0.02: decoding then depends on the prompt) as an HF folder. */
async function hfFolder(path: string): Promise<Float32Array> {
  const flat = new Float32Array(layout.totalSize);
  for (const [name, v] of randomValues(specs, 11, 0.3)) layout.view(flat, name).set(v);
  mkdirSync(path, { recursive: true });
  await writeSafetensors(join(path, SAFE_WEIGHTS_NAME), layout.params.map((p) => ({ name: p.name, dtype: 'F32' as const, shape: p.shape, data: layout.view(flat, p.name) })), { format: 'pt' });
  writeFileSync(join(path, 'config.json'), JSON.stringify(neoxConfigJson(config)));
  return flat;
}

const ARTICLES = [
  { id: 'a', title: '해람시 소식', body: '시장이 열렸다', keyphrases: ['해람시'] },
  { id: 'b', title_content: '경찰 스미싱 주의' },
];
const PROMPTS = ['generate keyphrases: 해람시 소식 시장이 열렸다 keyphrases generated:', 'generate keyphrases: 경찰 스미싱 주의 keyphrases generated:'];
const PREFIXES = ['generate keyphrases: ', ' keyphrases generated: '];

async function apiPhrases(flat: Float32Array, maxNewTokens: number): Promise<string[][]> {
  const tok = new ByteTokenizer();
  const gen = await CausalGenerator.create(config, flat, { intraOpThreads: 1 });
  try {
    const ids = await gen.generate(PROMPTS.map((p) => Int32Array.from(tok.encode(p))), { maxNewTokens });
    assert.ok(ids.some((t) => t.length > 0));
    const phrases = ids.map((t) => causalKeyphrases(tok.decode(t.filter((x) => x !== tok.eosId), { skipSpecialTokens: true }), { prefixes: PREFIXES }));
    assert.ok(phrases.every((p) => p.length > 0), 'every article gets a phrase (the comparison is not of empty outputs)');
    return phrases;
  } finally {
    await gen.release();
  }
}

function cliPhrases(model: string, name: string): string[][] {
  const input = join(dir, 'articles.jsonl');
  writeFileSync(input, `${ARTICLES.map((a) => JSON.stringify(a)).join('\n')}\n`);
  const out = join(dir, `${name}.jsonl`);
  const r = kp(['generate', '--model', model, '--input', input, '--out', out, '--max-new-tokens', '10', '--threads', '1', '--no-progress']);
  assert.equal(r.code, 0, r.stderr);
  const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; phrases: string[]; label?: string });
  assert.deepEqual(rows.map((x) => x.id), ['a', 'b']);
  assert.equal(rows[0]!.label, '해람시');
  return rows.map((x) => x.phrases);
}

test('kp-coord generate: a GPT-NeoX HF folder, and a LoRA adapter folder over it (merged), give the API output', async () => {
  const hf = join(dir, 'hf');
  const flat = await hfFolder(hf);
  assert.deepEqual(cliPhrases(hf, 'hf'), await apiPhrases(flat, 10));

  const settings = { r: 2, alpha: 8, dropout: 0, targetModules: ['query_key_value', 'dense_4h_to_h'] };
  const adapterSpecs = loraParamSpecs(specs, settings, 'gpt_neox');
  const adapterFlat = initLoraFlat(adapterSpecs, 3);
  // B away from its zero init so the adapter changes the model.
  for (let i = 0; i < adapterFlat.length; i++) if (adapterFlat[i] === 0) adapterFlat[i] = Math.sin(i) * 0.5;
  const adapterDir = join(dir, 'adapter');
  await writePeftAdapter(adapterDir, { settings, modelType: 'gpt_neox', baseModelNameOrPath: hf, specs: adapterSpecs, flat: adapterFlat });
  const merged = mergedWeights(specs, flat, await readPeftAdapter(adapterDir));
  const loaded = await loadGenerationModel(adapterDir);
  assert.equal(loaded.kind, 'adapter');
  assert.deepEqual(loaded.flat, merged);
  assert.notDeepEqual(merged, flat);
  assert.deepEqual(cliPhrases(adapterDir, 'adapter'), await apiPhrases(merged, 10));
});

test('kp-coord generate: an adapter over a preset with no run seed beside it is refused, naming why', async () => {
  const settings = { r: 2, alpha: 8, dropout: 0, targetModules: ['query_key_value'] };
  const adapterSpecs = loraParamSpecs(specs, settings, 'gpt_neox');
  const adapterDir = join(dir, 'preset-run', 'final');
  await writePeftAdapter(adapterDir, { settings, modelType: 'gpt_neox', baseModelNameOrPath: 'preset:neox-tiny', specs: adapterSpecs, flat: initLoraFlat(adapterSpecs, 1) });
  const input = join(dir, 'articles.jsonl');
  const r = kp(['generate', '--model', adapterDir, '--input', input, '--out', join(dir, 'refused.jsonl'), '--threads', '1']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /run's seed was not found/u);
  // With the run's summary.json naming the folder and its seed, the base is the seeded init.
  writeFileSync(join(dir, 'preset-run', 'summary.json'), JSON.stringify({ final_model: adapterDir, seed: 7 }));
  const m = await loadGenerationModel(adapterDir);
  const fresh = await loadGenerationModel('preset:neox-tiny', { initSeed: 7 });
  assert.equal(m.modelType, 'gpt_neox');
  assert.deepEqual(m.flat, mergedWeights(specs, fresh.flat, await readPeftAdapter(adapterDir)));
});

test('kp-coord generate --model preset:neox-tiny, beam search: one row per article, as the API decodes the seeded init', async () => {
  const input = join(dir, 'articles.jsonl');
  writeFileSync(input, `${ARTICLES.map((a) => JSON.stringify(a)).join('\n')}\n`);
  const out = join(dir, 'preset.jsonl');
  const r = kp(['generate', '--model', 'preset:neox-tiny', '--seed', '3', '--input', input, '--out', out, '--num-beams', '2', '--max-new-tokens', '6', '--threads', '1', '--no-progress', '--no-split']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { rows: number }).rows, 2);
  const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { phrases: string[] });
  const model = await loadGenerationModel('preset:neox-tiny', { initSeed: 3 });
  const tok = new ByteTokenizer();
  const gen = await CausalGenerator.create(config, model.flat, { intraOpThreads: 1 });
  try {
    const ids = await gen.generate(PROMPTS.map((p) => Int32Array.from(tok.encode(p))), { numBeams: 2, maxNewTokens: 6 });
    const expected = ids.map((t) => tok.decode(t.filter((x) => x !== tok.eosId), { skipSpecialTokens: true }).trim());
    assert.deepEqual(rows.map((x) => x.phrases[0] ?? ''), expected.map((e) => causalKeyphrases(e, { prefixes: PREFIXES }, { split: false, separator: ';', trim: true, dropEmpty: true, dropUrls: true, dedupe: true, topK: null })[0] ?? ''));
  } finally {
    await gen.release();
  }
});

test('kp-coord generate --max-input-tokens on GPT-NeoX: the article is cut, the target prefix kept at the prompt\'s end', async () => {
  const input = join(dir, 'articles.jsonl');
  writeFileSync(input, `${ARTICLES.map((a) => JSON.stringify(a)).join('\n')}\n`);
  const out = join(dir, 'truncated.jsonl');
  const r = kp(['generate', '--model', 'preset:neox-tiny', '--seed', '3', '--input', input, '--out', out, '--max-new-tokens', '6', '--max-input-tokens', '40', '--threads', '1', '--no-progress', '--no-split']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { truncated_inputs: number }).truncated_inputs, 2);
  const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { phrases: string[] });
  const tok = new ByteTokenizer();
  const tail = tok.encode(' keyphrases generated:');
  const prompts = PROMPTS.map((p) => Int32Array.from([...tok.encode(p.slice(0, p.length - ' keyphrases generated:'.length)).slice(0, 40 - tail.length), ...tail]));
  const model = await loadGenerationModel('preset:neox-tiny', { initSeed: 3 });
  const gen = await CausalGenerator.create(config, model.flat, { intraOpThreads: 1 });
  try {
    const ids = await gen.generate(prompts, { maxNewTokens: 6 });
    const expected = ids.map((t) => tok.decode(t.filter((x) => x !== tok.eosId), { skipSpecialTokens: true }).trim());
    assert.deepEqual(rows.map((x) => x.phrases[0] ?? ''), expected.map((e) => causalKeyphrases(e, { prefixes: PREFIXES }, { split: false, separator: ';', trim: true, dropEmpty: true, dropUrls: true, dedupe: true, topK: null })[0] ?? ''));
  } finally {
    await gen.release();
  }
});
