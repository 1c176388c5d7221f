import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeManifest } from '../../../shared/checkpoint/checkpoint-manifest.js';
import { writeRangeShard } from '../../../shared/checkpoint/range-shard.js';
import { T5Generator } from '../../../shared/generate/t5-generator.js';
import { ByteTokenizer } from '../../../shared/tokenizer/byte-tokenizer.js';
import { saveHfModel } from '../../../shared/weights/hf-checkpoint.js';
import { REPO_ROOT, SAMPLE_SET } from '../../helpers/sample-cache.js';
import { tinyModel } from './generate-helpers.js';

// `kp-coord generate` end to end, as a user runs it: the built CLI on small JSONL files in a temp dir.

const CLI = join(REPO_ROOT, 'dist', 'coordinator', 'cli', 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'kp-generate-cli-'));
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

/** The first `count` articles of the shipped sample set (title, body, keyphrases, id). */
function sampleInput(count: number): string {
  const path = join(dir, `sample-${count}.jsonl`);
  writeFileSync(path, readFileSync(SAMPLE_SET, 'utf8').split('\n').slice(0, count).join('\n') + '\n');
  return path;
}

test('preset model, beam search: one row per article with id, prediction, phrases and label; evaluate reads it', () => {
  const input = sampleInput(3);
  const out = join(dir, 'preset', 'pred.jsonl');
  const r = kp(['generate', '--model', 'preset:t5-tiny', '--input', input, '--out', out, '--num-beams', '2', '--max-new-tokens', '8', '--batch-size', '2', '--threads', '1', '--top-k', '1']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { rows: number; rows_with_label: number; new_tokens: number };
  assert.equal(report.rows, 3);
  assert.equal(report.rows_with_label, 3);
  assert.ok(report.new_tokens > 0 && report.new_tokens <= 24);
  assert.match(r.stderr, /3\/3 articles/, 'progress on stderr');
  const rows = readRows(out);
  assert.deepEqual(rows.map((x) => x.id), ['kns-0001', 'kns-0002', 'kns-0003']);
  for (const row of rows) {
    assert.ok(row.phrases.length <= 1, '--top-k 1');
    assert.equal(row.prediction, row.phrases.join('; '));
    assert.match(row.label!, /; /);
  }
  const e = kp(['evaluate', '--pairs', out, '--json']);
  assert.equal(e.code, 0, e.stderr);
  assert.ok('seed' in (JSON.parse(e.stdout) as object));
});

test('an HF directory and a checkpoint holding the same weights give the API output', async () => {
  // t5-tiny's config (the checkpoint names preset:t5-tiny as its model); seed 2 keeps these articles
  // going for all 12 tokens, one of them in a loop that the no-repeat constraint breaks.
  const m = tinyModel(2, 1);
  const hf = join(dir, 'hf');
  await saveHfModel(hf, m.config, m.flat);
  const ckpt = join(dir, 'checkpoint-3');
  mkdirSync(ckpt);
  const size = m.layout.totalSize;
  const shard = await writeRangeShard(ckpt, 0, 1, { start: 0, end: size }, { params: m.flat, exp_avg: new Float32Array(size), exp_avg_sq: new Float32Array(size) }, 3);
  await writeManifest(ckpt, {
    version: 1, run_id: 'test', steps_done: 3, epoch: 0, world: 1, global_batch_size: 1, zero_stage: 0, param_count: size, padded_size: size,
    model: 'preset:t5-tiny', seed: 0, data_seed: 0, files: [shard], evals: [], best: null, created: new Date(0).toISOString(),
  });
  const input = join(dir, 'two.jsonl');
  writeFileSync(input, '{"id": "a", "title": "해람시 소식", "body": "시장이 열렸다"}\n{"title_content": "경찰 스미싱 주의", "keyphrases": ["스미싱"]}\n');
  const outs = [hf, ckpt].map((model, i) => {
    const out = join(dir, `from-${i}.jsonl`);
    // HF's flag name, `--no-repeat-ngram-size N`, must reach the decoder as a number (not a negated flag).
    const r = kp(['generate', '--model', model, '--input', input, '--out', out, '--max-new-tokens', '12', '--threads', '1', '--no-split', '--no-repeat-ngram-size', '2']);
    assert.equal(r.code, 0, r.stderr);
    return readRows(out);
  });
  assert.deepEqual(outs[0], outs[1]);
  assert.equal(outs[0]![0]!.id, 'a');
  assert.ok(!('label' in outs[0]![0]!) && outs[0]![1]!.label === '스미싱', 'label only where the input had keyphrases');

  // The same articles through the API: prefix + text, byte ids + eos, greedy with no repeated
  // bigram, decoded, the whole text kept as one phrase.
  const tok = new ByteTokenizer();
  const texts = ['generate keyphrases: 해람시 소식 시장이 열렸다', 'generate keyphrases: 경찰 스미싱 주의'];
  const gen = await T5Generator.create(m.config, m.flat, { intraOpThreads: 1 });
  try {
    const inputs = texts.map((t) => Int32Array.from([...tok.encode(t), tok.eosId]));
    const ids = await gen.generate(inputs, { maxNewTokens: 12, noRepeatNgramSize: 2 });
    assert.notDeepEqual(await gen.generate(inputs, { maxNewTokens: 12 }), ids, 'the constraint matters on these articles');
    const expected = ids.map((t) => tok.decode(t, { skipSpecialTokens: true }).trim());
    assert.deepEqual(outs[0]!.map((r) => r.phrases[0] ?? ''), expected);
  } finally {
    await gen.release();
  }
});

test('bad input exits 1 naming file, line and field, and writes nothing; usage mistakes exit 2', () => {
  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, '{"title": "t", "body": "b"}\n{"title": "t", "body": null}\n');
  const out = join(dir, 'never.jsonl');
  const r = kp(['generate', '--model', 'preset:t5-tiny', '--input', bad, '--out', out]);
  assert.equal(r.code, 1);
  assert.ok(r.stderr.includes(`${bad}:2: field body: no text`), r.stderr);
  assert.ok(!existsSync(out));

  const missing = kp(['generate', '--model', join(dir, 'no-such-model'), '--input', sampleInput(1), '--out', out]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no-such-model: no such model directory/);

  // A missing input file is named, not "unexpected error: ENOENT" with a stack.
  const noInput = kp(['generate', '--model', 'preset:t5-tiny', '--input', join(dir, 'no-such-input.jsonl'), '--out', out]);
  assert.equal(noInput.code, 1, noInput.stderr);
  assert.match(noInput.stderr, /^kp-coord: .*no-such-input\.jsonl: no such file$/mu);
  assert.doesNotMatch(noInput.stderr, /unexpected error/);
  assert.ok(!existsSync(out));

  const usage = kp(['generate', '--model', 'preset:t5-tiny', '--input', bad, '--out', out, '--num-beams', '0', '--top-k', '0']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--num-beams: .*--top-k must be a positive integer/s);
  assert.ok(!existsSync(out));
});
