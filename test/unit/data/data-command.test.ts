import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import type { PrepareReport } from '../../../shared/data/prepare.js';
import { REPO_ROOT, fixture, scratchDir } from './helpers.js';

const MAIN = join(REPO_ROOT, 'dist', 'coordinator', 'cli', 'main.js');

function kp(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, 'data', ...args], { encoding: 'utf8', env: { ...process.env, KPCOORD_LOG_LEVEL: 'warn' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('data prepare: rule flags and a rules file over the preset; summary printed; exit 0', (t) => {
  const dir = scratchDir(t);
  const rules = join(dir, 'rules.yaml');
  writeFileSync(rules, 'eval_ratio: 0.4\nmax_keyphrases: 2\n');
  const out = join(dir, 'cache');
  const r = kp('prepare', '--input', fixture('rules-rows.jsonl'), '--out', out, '--rules', rules, '--min-input-tokens', 'none', '--max-input-tokens', 'none', '--max-target-tokens', '100', '--split-seed', '5');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /read 13 rows from 1 file\(s\); bad lines 0 \(allowed 0\)/u);
  assert.match(r.stdout, /kept: train 3, eval 2/u);
  const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as PrepareReport;
  assert.equal(report.rules.max_keyphrases, 2);
  assert.equal(report.rules.split_seed, 5);
  assert.equal(report.rules.min_input_tokens, null);
  const inspect = kp('inspect', out, '--tokenizer', 'builtin', '--samples', '1');
  assert.equal(inspect.code, 0, inspect.stderr);
  const shown = JSON.parse(inspect.stdout) as { splits: { train: number; eval: number }; samples: Array<{ target: string }> };
  assert.deepEqual(shown.splits, { train: 3, eval: 2 });
  assert.equal(shown.samples[0]!.target.split('; ').length <= 2, true);
});

test('data prepare: bad input exits 1 naming file and line, and leaves nothing', (t) => {
  const dir = scratchDir(t);
  const r = kp('prepare', '--input', fixture('corrupt.jsonl'), '--out', join(dir, 'cache'), '--preset', 'embedded-sample');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^kp-coord: .*corrupt\.jsonl:2: not valid JSON/mu);
  assert.deepEqual(readdirSync(dir), []);
  const bad = kp('prepare', '--input', fixture('rules-rows.jsonl'), '--out', join(dir, 'cache'), '--max-input-tokens', 'lots');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--max-input-tokens: expected a non-negative integer or "none", got "lots"/u);
  const ratio = kp('prepare', '--input', fixture('rules-rows.jsonl'), '--out', join(dir, 'cache'), '--eval-ratio', '2');
  assert.equal(ratio.code, 1);
  assert.match(ratio.stderr, /bad rules: eval_ratio/u);
});

test('data: usage mistakes exit 2', () => {
  const r = kp('prepare', '--input', fixture('rules-rows.jsonl'));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Missing required argument: out/u);
  assert.equal(kp('prepare', '--input', 'x.jsonl', '--out', 'y', '--preset', 'v9').code, 2);
  assert.equal(kp().code, 2);
});

test('data synth writes train and eval files and prints a summary', (t) => {
  const dir = scratchDir(t);
  const out = join(dir, 'synth.jsonl');
  const r = kp('synth', '--out', out, '--train', '20', '--eval', '5', '--seed', '2');
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { eval_out: string; rows: { train: number; eval: number }; input_tokens: { min: number; max: number } };
  assert.equal(s.eval_out, join(dir, 'synth.eval.jsonl'));
  assert.deepEqual(s.rows, { train: 20, eval: 5 });
  assert.ok(s.input_tokens.min >= 500 && s.input_tokens.max <= 999);
  assert.equal(readFileSync(out, 'utf8').trim().split('\n').length, 20);
  assert.ok(existsSync(join(dir, 'synth.eval.jsonl')));
});

test('data prepare --overwrite replaces only a data cache (or an empty folder), never other folders', (t) => {
  const dir = scratchDir(t);
  const source = join(dir, 'src');
  mkdirSync(join(source, 'lib'), { recursive: true });
  writeFileSync(join(source, 'lib', 'main.ts'), 'export {};\n');
  const r = kp('prepare', '--input', fixture('rules-rows.jsonl'), '--out', source, '--overwrite', '--eval-ratio', '0', '--min-input-tokens', 'none');
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /src: exists and is not a kp-coord data cache; --overwrite replaces only a kp-coord data cache/u);
  assert.equal(readFileSync(join(source, 'lib', 'main.ts'), 'utf8'), 'export {};\n', 'the folder was touched');
  // A cache is replaced; so is an empty folder.
  const cache = join(dir, 'cache');
  assert.equal(kp('prepare', '--input', fixture('rules-rows.jsonl'), '--out', cache, '--eval-ratio', '0', '--min-input-tokens', 'none').code, 0);
  const again = kp('prepare', '--input', fixture('rules-rows.jsonl'), '--out', cache, '--overwrite', '--eval-ratio', '0', '--min-input-tokens', 'none');
  assert.equal(again.code, 0, again.stderr);
  mkdirSync(join(dir, 'empty'));
  assert.equal(kp('prepare', '--input', fixture('rules-rows.jsonl'), '--out', join(dir, 'empty'), '--overwrite', '--eval-ratio', '0', '--min-input-tokens', 'none').code, 0);
});

test('data prepare --out where nothing can be written: exit 1 naming the path, before reading the input, no stack', () => {
  // /proc refuses new folders even to root (a chmod would not stop root); Node's recursive mkdir
  // used to loop for ever there. The input is malformed, so an error about it means the output
  // was checked too late. (spawnSync: its timeout bounds a loop.)
  for (const out of ['/proc/kp-coord-cache', '/proc/kp-coord/nested/cache']) {
    const r = spawnSync(process.execPath, [MAIN, 'data', 'prepare', '--input', fixture('corrupt.jsonl'), '--out', out], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.signal, null, `still running after 30 s with --out ${out}`);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^kp-coord: ${out}: cannot write in /proc: E[A-Z]+`, 'mu'));
    assert.doesNotMatch(r.stderr, /corrupt\.jsonl|unexpected error|\n\s+at /u);
  }
  // A file where a parent folder should be.
  const file = fixture('rules-rows.jsonl');
  const r = kp('prepare', '--input', file, '--out', join(file, 'cache'));
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /rules-rows\.jsonl\/cache: .*rules-rows\.jsonl is not a folder/u);
});

test('data prepare: a JSONL line that is not UTF-8 exits 1 with file:line; --skip-bad counts it; no U+FFFD in the cache', (t) => {
  const dir = scratchDir(t);
  const lines = readFileSync(fixture('rules-rows.jsonl'));
  const first = lines.indexOf(0x0a) + 1;
  const input = join(dir, 'mixed.jsonl');
  // Line 2 gets an invalid byte in place of its first title character's first byte.
  const mixed = Buffer.from(lines);
  const quote = mixed.indexOf('"title"', first) + '"title": "'.length;
  assert.ok(quote > first);
  const withSpace = mixed[quote - 1] === 0x22 ? quote : quote - 1;
  mixed[withSpace] = 0xff;
  writeFileSync(input, mixed);
  const r = kp('prepare', '--input', input, '--out', join(dir, 'cache'), '--min-input-tokens', 'none');
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^kp-coord: .*mixed\.jsonl:2: not valid UTF-8 at byte \d+ of the line/mu);
  assert.ok(!existsSync(join(dir, 'cache')));
  const skip = kp('prepare', '--input', input, '--out', join(dir, 'cache'), '--min-input-tokens', 'none', '--skip-bad', '1');
  assert.equal(skip.code, 0, skip.stderr);
  const report = JSON.parse(readFileSync(join(dir, 'cache', 'report.json'), 'utf8')) as PrepareReport;
  assert.equal(report.bad_lines.count, 1);
  assert.equal(report.bad_lines.lines[0]!.line, 2);
});

test('data prepare --layout causal --prefix-tokens added with 2 tokeniser threads; inspect shows the layout and the whole sequence', (t) => {
  const dir = scratchDir(t);
  const out = join(dir, 'cache');
  const common = ['--input', fixture('rules-rows.jsonl'), '--tokenizer', fixture('t5-style-tokenizer'), '--no-korean-only', '--min-input-tokens', 'none', '--max-input-tokens', 'none', '--max-target-tokens', 'none', '--eval-ratio', '0'];
  const r = kp('prepare', ...common, '--out', out, '--layout', 'causal', '--prefix-tokens', 'added', '--max-sequence-tokens', '1000', '--threads', '2');
  assert.equal(r.code, 0, r.stderr);
  const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { layout: string; causal: { prefix_tokens: string; added_tokens: Array<{ content: string }> } };
  assert.equal(manifest.layout, 'causal');
  assert.deepEqual(manifest.causal.added_tokens.map((a) => a.content), ['generate keyphrases:', 'keyphrases generated:']);
  const inspect = kp('inspect', out, '--tokenizer', fixture('t5-style-tokenizer'), '--samples', '1');
  assert.equal(inspect.code, 0, inspect.stderr);
  const shown = JSON.parse(inspect.stdout) as { layout: string; samples: Array<{ input: string; target: string }> };
  assert.equal(shown.layout, 'causal');
  assert.match(shown.samples[0]!.input, /^generate keyphrases:.*keyphrases generated:$/u);
  // A seq2seq cache refuses the causal-only limit.
  const bad = kp('prepare', ...common, '--out', join(dir, 's2s'), '--max-sequence-tokens', '1000');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /max_sequence_tokens limits a causal sequence/u);
  const usage = kp('prepare', ...common, '--out', join(dir, 'x'), '--layout', 'decoder');
  assert.equal(usage.code, 2);
});
