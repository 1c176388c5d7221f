import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadRunConfig, resolveRunConfig } from '../../../shared/config/resolve-run-config.js';
import { RunConfigSchema } from '../../../shared/config/run-config.js';
import { InputFileError } from '../../../shared/errors.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'config');

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kp-config-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof InputFileError, String(e));
    return e.message;
  }
  assert.fail('expected an InputFileError');
}

test('one error lists every bad field of a YAML file, in line order, with line numbers and suggestions', () => {
  const file = join(FIXTURES, 'many-bad-fields.yaml');
  const m = messageOf(() => loadRunConfig(file, { baseDir: REPO_ROOT }));
  assert.equal(
    m,
    [
      `${file}: invalid run config: 10 problems:`,
      '  - line 1: run_name: expected 1-64 letters, digits, _ or - (it becomes a NATS subject token and a folder name) (got "my run")',
      '  - line 3: learning_rat: unknown key; did you mean learning_rate?',
      '  - line 4: per_device_train_batch_size: must be >= 1 (got 0)',
      '  - line 5: lr_scheduler_type: expected one of linear, cosine, constant, constant_with_warmup (other transformers schedulers are not implemented) (got "polynomial")',
      '  - line 6: num_train_epochs: expected a number (got "3"); write it without quotes',
      '  - line 7: data.train_file: is required',
      '  - line 8: data.train_fil: unknown key; did you mean train_file?',
      '  - line 12: zero_optimization.offload_optimizer.device: expected "none" or "cpu" (NVMe offload is not implemented) (got "nvme")',
      '  - line 13: zero_optimization.reduce_bucket_sise: unknown key; did you mean reduce_bucket_size?',
      '  - line 14: model: unknown model preset; known: preset:t5-tiny, preset:t5-small-bytes, preset:pko-t5-base, preset:neox-tiny, preset:polyglot-ko-1.3b, preset:bart-tiny, preset:kobart-news',
    ].join('\n'),
  );
});

test('unknown keys suggest the key meant: typos, and names from DeepSpeed or other trainers', () => {
  const m = messageOf(() => resolveRunConfig({ learning_rat: 1e-3, lr: 1e-3, train_micro_batch_size_per_gpu: 4, epochs: 3, zero_optimization: { stag: 2 }, totally_unrelated_thing: 1 }));
  assert.match(m, /learning_rat: unknown key; did you mean learning_rate\?/u);
  assert.match(m, /lr: unknown key; did you mean learning_rate\?/u);
  assert.match(m, /train_micro_batch_size_per_gpu: unknown key; did you mean per_device_train_batch_size\?/u);
  assert.match(m, /epochs: unknown key; did you mean num_train_epochs\?/u);
  assert.match(m, /zero_optimization\.stag: unknown key; did you mean stage\?/u);
  assert.match(m, /totally_unrelated_thing: unknown key\n|totally_unrelated_thing: unknown key$/u);
  assert.match(m, /6 problems/u);
  // The schema alone is strict too.
  assert.equal(RunConfigSchema.safeParse({ learning_rat: 1 }).success, false);
});

test('stage 3: its keys in either DeepSpeed spelling, conflicting spellings and optimizer_threads below stage 3 refused with their lines', (t) => {
  const dir = scratch(t);
  const file = join(dir, 'run.yaml');
  writeFileSync(file, 'seed: 1\nzero_optimization:\n  stage: 3\n  offload_param:\n    device: cpu\n  stage3_max_reuse_distance: 0\n  prefetch_bucket_size: 1000\n');
  const z = loadRunConfig(file).config.zero_optimization;
  assert.deepEqual([z.stage, z.offload_param.device, z.max_reuse_distance, z.prefetch_bucket_size, z.max_live_parameters, z.param_persistence_threshold], [3, 'cpu', 0, 1000, 1e9, 1e5]);
  writeFileSync(file, 'seed: 1\nzero_optimization:\n  stage: 2\n  stage3_max_reuse_distance: 0\n  max_reuse_distance: 5\noptimizer_threads: 2\n');
  assert.equal(
    messageOf(() => loadRunConfig(file)),
    `${file}: invalid run config: 2 problems:\n  - line 5: zero_optimization.max_reuse_distance: stage3_max_reuse_distance is 0 and its alias max_reuse_distance is 5; give one\n  - line 6: optimizer_threads: 2 threads need zero_optimization.stage 3 (the threads update the shard buffers in place as shared memory; below stage 3 onnxruntime reads the whole parameter buffer and refuses shared memory)`,
  );
  assert.match(messageOf(() => resolveRunConfig({ zero_optimization: { stage: 4 } })), /zero_optimization\.stage: expected 0, 1, 2 or 3/u);
});

test('YAML and JSON syntax errors name the file and line', (t) => {
  const dir = scratch(t);
  const yaml = join(dir, 'run.yaml');
  writeFileSync(yaml, 'seed: 1\nlearning_rate: [1e-3\nworkers: 2\n');
  assert.match(messageOf(() => loadRunConfig(yaml)), new RegExp(`^${yaml.replace(/[.*+?^${}()|[\]\\]/gu, '\\$&')}:\\d+: not valid YAML: `, 'u'));
  const dup = join(dir, 'dup.yaml');
  writeFileSync(dup, 'seed: 1\nworkers: 2\nseed: 3\n');
  assert.match(messageOf(() => loadRunConfig(dup)), /dup\.yaml:3: not valid YAML: Map keys must be unique/u);
  const json = join(dir, 'run.json');
  writeFileSync(json, '{\n  "seed": 1,\n  "workers": 2,\n}\n');
  assert.match(messageOf(() => loadRunConfig(json)), /run\.json:4: not valid JSON/u);
  // YAML-only syntax in a .json file is refused.
  const yamlish = join(dir, 'yamlish.json');
  writeFileSync(yamlish, 'seed: 1\n');
  assert.match(messageOf(() => loadRunConfig(yamlish)), /yamlish\.json(:\d+)?: not valid JSON/u);
  const txt = join(dir, 'run.txt');
  writeFileSync(txt, 'seed: 1\n');
  assert.match(messageOf(() => loadRunConfig(txt)), /run\.txt: expected a \.yaml, \.yml, \.json file/u);
  assert.match(messageOf(() => loadRunConfig(join(dir, 'absent.yaml'))), /absent\.yaml: cannot read the file/u);
  const list = join(dir, 'list.yaml');
  writeFileSync(list, '- seed: 1\n');
  assert.match(messageOf(() => loadRunConfig(list)), /list\.yaml: a run config must be a mapping/u);
});

test('JSON configs report fields by line like YAML ones', (t) => {
  const dir = scratch(t);
  const json = join(dir, 'run.json');
  writeFileSync(json, '{\n  "seed": 1,\n  "zero_optimization": {\n    "stage": "two"\n  },\n  "workers": 0\n}\n');
  const m = messageOf(() => loadRunConfig(json));
  assert.match(m, /line 4: zero_optimization\.stage: expected 0, 1, 2 or 3/u);
  assert.match(m, /line 6: workers: must be >= 1 \(got 0\)/u);
});

test('files the config names must exist; each missing one is listed', (t) => {
  const dir = scratch(t);
  const m = messageOf(() =>
    resolveRunConfig({ data: { train_file: 'train.jsonl', eval_file: 'eval.jsonl' }, tokenizer: 'tok/', model: 'no-model', nats: { credentials_file: 'x.creds' } }, { baseDir: dir }),
  );
  assert.match(m, /5 problems/u);
  assert.match(m, new RegExp(`data\\.train_file: no such file: ${join(dir, 'train.jsonl')}`, 'u'));
  assert.match(m, /data\.eval_file: no such file: .*eval\.jsonl/u);
  assert.match(m, /tokenizer: no such tokenizer\.json or folder: .*tok .*"builtin"/u);
  assert.match(m, /model: no such directory: .*no-model \(an HF model folder: config\.json \+ model\.safetensors; or preset:<name>\)/u);
  assert.match(m, /nats\.credentials_file: no such file: .*x\.creds/u);
  writeFileSync(join(dir, 'taken'), '');
  assert.match(messageOf(() => resolveRunConfig({ output_dir: 'taken' }, { baseDir: dir })), /output_dir: .*taken exists and is not a folder/u);
});

test('cluster keys: heartbeats must leave room for one late beat; NATS subjects must be tokens', () => {
  assert.match(messageOf(() => resolveRunConfig({ heartbeat_interval_ms: 1000, heartbeat_timeout_ms: 1500 })), /heartbeat_timeout_ms: must be at least twice heartbeat_interval_ms \(1000\)/u);
  const m = messageOf(() => resolveRunConfig({ nats: { url: 'http://x', subject_prefix: 'a..b' }, workers: 1.5 }));
  assert.match(m, /nats\.url: expected a nats:\/\/, tls:\/\/, ws:\/\/ or wss:\/\/ URL/u);
  assert.match(m, /nats\.subject_prefix: expected NATS subject tokens/u);
  assert.match(m, /workers: expected an integer \(got 1\.5\)/u);
});

test('a value of the wrong kind says what would have been accepted', () => {
  const m = messageOf(() => resolveRunConfig({ data: 5, zero_optimization: { reduce_bucket_size: 'big' }, max_steps: 0, logging_steps: 2.5 }));
  assert.match(m, /data: expected a string or a mapping \(got 5\)/u);
  assert.match(m, /zero_optimization\.reduce_bucket_size: expected "auto" or a number \(got "big"\)/u);
  assert.match(m, /max_steps: expected -1 \(train for num_train_epochs\) or a positive number of steps/u);
  assert.match(m, /logging_steps: expected a whole number of steps, or a ratio of the total steps in \(0, 1\)/u);
});

test('a config that is not UTF-8, or uses an alias to no anchor, is an InputFileError naming the file (found by fuzz-inputs)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-config-bytes-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const latin = join(dir, 'latin.yaml');
  writeFileSync(latin, Buffer.concat([Buffer.from('seed: 1\noutput_dir: runs/'), Buffer.from([0xe9]), Buffer.from('t\xe9\n', 'latin1')]));
  assert.throws(() => loadRunConfig(latin), (e: unknown) => e instanceof InputFileError && e.message === `${latin}:2: not valid UTF-8; save the file as UTF-8`);
  const alias = join(dir, 'alias.yaml');
  writeFileSync(alias, 'seed: *a\n');
  assert.throws(() => loadRunConfig(alias), (e: unknown) => e instanceof InputFileError && /alias\.yaml: not valid YAML: Unresolved alias/u.test(e.message));
});
