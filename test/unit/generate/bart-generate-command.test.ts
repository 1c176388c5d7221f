import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeManifest } from '../../../shared/checkpoint/checkpoint-manifest.js';
import { writeRangeShard } from '../../../shared/checkpoint/range-shard.js';
import { BartGenerator } from '../../../shared/generate/bart-generator.js';
import { BART_LOGITS_BIAS } from '../../../shared/models/bart-params.js';
import { ByteTokenizer } from '../../../shared/tokenizer/byte-tokenizer.js';
import { saveBartModel } from '../../../shared/weights/hf-checkpoint.js';
import { REPO_ROOT, SAMPLE_SET } from '../../helpers/sample-cache.js';
import { tinyBart } from './bart-helpers.js';

// `kp-coord generate` for BART end to end, as a user runs it: the built CLI on small JSONL files,
// with a preset, an HF BartForConditionalGeneration folder and a kp-coord checkpoint of the same
// weights (which holds the trained parameters only: final_logits_bias, never trained, comes from
// the HF folder the run started from).

const CLI = join(REPO_ROOT, 'dist', 'coordinator', 'cli', 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'kp-bart-generate-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function kp(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, KPCOORD_LOG_LEVEL: 'warn' }, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface OutRow {
  id?: string;
  prediction: string;
  phrases: string[];
  label?: string;
}
const readRows = (path: string): OutRow[] => readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as OutRow);

test('preset:bart-tiny, beam search: one row per article with id, prediction, phrases and label', () => {
  const input = join(dir, 'sample-3.jsonl');
  writeFileSync(input, readFileSync(SAMPLE_SET, 'utf8').split('\n').slice(0, 3).join('\n') + '\n');
  const out = join(dir, 'preset', 'pred.jsonl');
  const r = kp(['generate', '--model', 'preset:bart-tiny', '--input', input, '--out', out, '--num-beams', '2', '--max-new-tokens', '8', '--batch-size', '2', '--threads', '1']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { rows: number; rows_with_label: number; new_tokens: number };
  assert.equal(report.rows, 3);
  assert.equal(report.rows_with_label, 3);
  // bart-tiny forces eos at the 8th token: between 1 and 8 new tokens per article.
  assert.ok(report.new_tokens >= 3 && report.new_tokens <= 24, `${report.new_tokens} new tokens`);
  const rows = readRows(out);
  assert.deepEqual(rows.map((x) => x.id), ['kns-0001', 'kns-0002', 'kns-0003']);
  for (const row of rows) assert.equal(row.prediction, row.phrases.join('; '));
});

test('a folder written by `dev init-model --preset bart-tiny` decodes as preset:bart-tiny with the same seed', () => {
  const model = join(dir, 'init-model');
  const init = kp(['dev', 'init-model', '--preset', 'bart-tiny', '--out', model, '--seed', '3']);
  assert.equal(init.code, 0, init.stderr);
  const input = join(dir, 'one.jsonl');
  writeFileSync(input, '{"id": "x", "title": "해람시 소식", "body": "시장이 열렸다"}\n');
  const outs = [[model], ['preset:bart-tiny', '--seed', '3']].map((m, i) => {
    const out = join(dir, `init-${i}.jsonl`);
    const r = kp(['generate', '--model', ...m, '--input', input, '--out', out, '--max-new-tokens', '6', '--num-beams', '2', '--threads', '1', '--no-split', '--tokenizer', 'builtin']);
    assert.equal(r.code, 0, r.stderr);
    return { rows: readRows(out), tokens: (JSON.parse(r.stdout) as { new_tokens: number }).new_tokens };
  });
  assert.deepEqual(outs[0], outs[1]);
  assert.ok(outs[0]!.tokens > 0);
});

test('an HF BART folder and a checkpoint of its parameters give the API output (final_logits_bias from the folder)', async () => {
  const m = tinyBart();
  const bias = m.layout.get(BART_LOGITS_BIAS);
  const params = m.flat.subarray(0, bias.offset);
  const hf = join(dir, 'hf');
  await saveBartModel(hf, m.config, params, m.layout.view(m.flat, BART_LOGITS_BIAS));

  const ckpt = join(dir, 'checkpoint-5');
  mkdirSync(ckpt);
  const size = params.length;
  const shard = await writeRangeShard(ckpt, 0, 1, { start: 0, end: size }, { params: Float32Array.from(params), exp_avg: new Float32Array(size), exp_avg_sq: new Float32Array(size) }, 5);
  await writeManifest(ckpt, {
    version: 1, run_id: 'test', steps_done: 5, epoch: 0, world: 1, global_batch_size: 1, zero_stage: 0, param_count: size, padded_size: size,
    model: hf, seed: 0, data_seed: 0, files: [shard], evals: [], best: null, created: new Date(0).toISOString(),
  });

  const input = join(dir, 'two.jsonl');
  writeFileSync(input, '{"id": "a", "title": "해람시 소식", "body": "시장이 열렸다"}\n{"title_content": "경찰 스미싱 주의", "keyphrases": ["스미싱"]}\n');
  const outs = [hf, ckpt].map((model, i) => {
    const out = join(dir, `from-${i}.jsonl`);
    const r = kp(['generate', '--model', model, '--input', input, '--out', out, '--max-new-tokens', '10', '--threads', '1', '--no-split', '--tokenizer', 'builtin']);
    assert.equal(r.code, 0, r.stderr);
    return readRows(out);
  });
  assert.deepEqual(outs[1], outs[0], 'checkpoint = HF folder');

  // The same articles through the API: prefix + text, byte ids + eos, greedy, decoded, one phrase.
  const tok = new ByteTokenizer();
  const inputs = ['generate keyphrases: 해람시 소식 시장이 열렸다', 'generate keyphrases: 경찰 스미싱 주의'].map((t) => Int32Array.from([...tok.encode(t), tok.eosId]));
  const decodeWith = async (flat: Float32Array) => {
    const gen = await BartGenerator.create(m.config, flat, { intraOpThreads: 1 });
    try {
      return (await gen.generate(inputs, { maxNewTokens: 10 })).map((t) => tok.decode(t, { skipSpecialTokens: true }).trim());
    } finally {
      await gen.release();
    }
  };
  assert.deepEqual(outs[0]!.map((r) => r.phrases[0] ?? ''), await decodeWith(m.flat));
  // The buffer matters on these articles: without it (zeros) the outputs differ.
  const noBias = Float32Array.from(m.flat);
  noBias.fill(0, bias.offset);
  assert.notDeepEqual(await decodeWith(noBias), await decodeWith(m.flat));
});
