import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';
import { embeddedDefaultConfig } from '../../../shared/config/embedded-default.js';
import { resolveRunConfig } from '../../../shared/config/resolve-run-config.js';
import { EMBEDDED_SAMPLE_FILE, RunConfigSchema } from '../../../shared/config/run-config.js';
import { SHARDING_POLICY_BY_STAGE } from '../../../shared/config/zero-config.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

test('an empty config is HF TrainingArguments defaults on the embedded sample', () => {
  const r = resolveRunConfig({}, { baseDir: REPO_ROOT });
  const c = r.config;
  // HF TrainingArguments defaults (transformers 4.4x), key by key.
  assert.deepEqual(
    {
      seed: c.seed,
      per_device_train_batch_size: c.per_device_train_batch_size,
      per_device_eval_batch_size: c.per_device_eval_batch_size,
      gradient_accumulation_steps: c.gradient_accumulation_steps,
      learning_rate: c.learning_rate,
      lr_scheduler_type: c.lr_scheduler_type,
      warmup_ratio: c.warmup_ratio,
      warmup_steps: c.warmup_steps,
      weight_decay: c.weight_decay,
      adam_beta1: c.adam_beta1,
      adam_beta2: c.adam_beta2,
      adam_epsilon: c.adam_epsilon,
      max_grad_norm: c.max_grad_norm,
      num_train_epochs: c.num_train_epochs,
      max_steps: c.max_steps,
      dataloader_drop_last: c.dataloader_drop_last,
      group_by_length: c.group_by_length,
      eval_strategy: c.eval_strategy,
      save_strategy: c.save_strategy,
      save_steps: c.save_steps,
      load_best_model_at_end: c.load_best_model_at_end,
      predict_with_generate: c.predict_with_generate,
      optim: c.optim,
    },
    {
      seed: 42,
      per_device_train_batch_size: 8,
      per_device_eval_batch_size: 8,
      gradient_accumulation_steps: 1,
      learning_rate: 5e-5,
      lr_scheduler_type: 'linear',
      warmup_ratio: 0,
      warmup_steps: 0,
      weight_decay: 0,
      adam_beta1: 0.9,
      adam_beta2: 0.999,
      adam_epsilon: 1e-8,
      max_grad_norm: 1,
      num_train_epochs: 3,
      max_steps: -1,
      dataloader_drop_last: false,
      group_by_length: false,
      eval_strategy: 'no',
      save_strategy: 'steps',
      save_steps: 500,
      load_best_model_at_end: false,
      predict_with_generate: false,
      optim: 'adamw_torch',
    },
  );
  // Optional HF keys stay absent (HF's None), and so does run_name: the coordinator names the run.
  for (const k of ['run_name', 'data_seed', 'save_total_limit', 'early_stopping_patience', 'dropout_rate', 'nats'] as const) assert.equal(c[k], undefined, k);
  assert.equal(c.logging_steps, 10);
  assert.equal(c.output_dir, resolve(REPO_ROOT, 'runs/kp-coord'));
  assert.equal(c.model, 'preset:t5-small-bytes');
  assert.equal(c.tokenizer, 'builtin');
  assert.deepEqual(c.data, { train_file: EMBEDDED_SAMPLE_FILE, preset: 'embedded-sample' });
  assert.ok(existsSync(EMBEDDED_SAMPLE_FILE), EMBEDDED_SAMPLE_FILE);
  assert.deepEqual(r.data, { kind: 'files', trainFile: EMBEDDED_SAMPLE_FILE, evalFile: undefined, rulesPreset: 'embedded-sample' });
  assert.deepEqual(r.model, { kind: 'preset', name: 't5-small-bytes' });
  // DeepSpeed's defaults: stage 0, no offload, 5e8-element buckets, no overlap below stage 3, and
  // its stage-3 defaults (resolved under the field names, whatever the stage).
  assert.deepEqual(c.zero_optimization, {
    stage: 0,
    offload_optimizer: { device: 'none' },
    offload_param: { device: 'none' },
    reduce_bucket_size: 500_000_000,
    allgather_bucket_size: 500_000_000,
    overlap_comm: false,
    prefetch_bucket_size: 50_000_000,
    param_persistence_threshold: 100_000,
    max_live_parameters: 1_000_000_000,
    max_reuse_distance: 1_000_000_000,
  });
  assert.equal(c.optimizer_threads, 1);
  assert.deepEqual([c.workers, c.heartbeat_interval_ms, c.heartbeat_timeout_ms], [2, 2000, 30_000]);
  assert.deepEqual([r.worldSize, r.globalBatchSize, r.sharding], [2, 16, 'replicated']);
  assert.deepEqual(r.ignored, []);
});

test('the resolved config is frozen all the way down', () => {
  const r = resolveRunConfig({}, { baseDir: REPO_ROOT });
  assert.ok(Object.isFrozen(r) && Object.isFrozen(r.config) && Object.isFrozen(r.config.zero_optimization) && Object.isFrozen(r.config.zero_optimization.offload_optimizer));
  assert.throws(() => {
    (r.config as { seed: number }).seed = 1;
  }, TypeError);
});

test('every group: run, model, data, training, lifecycle, ZeRO, cluster', () => {
  const r = resolveRunConfig(
    {
      run_name: 'exp-7',
      output_dir: 'out/exp-7',
      seed: 7,
      data_seed: 11,
      model: 'preset:t5-tiny',
      dropout_rate: 0.05,
      data: { train_file: 'shared/datasets/ko-news-sample.jsonl', eval_file: 'shared/datasets/ko-news-sample.jsonl', preset: 'v4' },
      tokenizer: 'builtin',
      per_device_train_batch_size: 3,
      per_device_eval_batch_size: 5,
      gradient_accumulation_steps: 4,
      learning_rate: 2e-4,
      lr_scheduler_type: 'cosine',
      warmup_ratio: 0.06,
      weight_decay: 0.01,
      adam_beta1: 0.85,
      adam_beta2: 0.98,
      adam_epsilon: 1e-6,
      max_grad_norm: 0.5,
      num_train_epochs: 2.5,
      logging_steps: 0.1,
      dataloader_drop_last: true,
      group_by_length: true,
      eval_strategy: 'steps',
      eval_steps: 50,
      save_strategy: 'steps',
      save_steps: 100,
      save_total_limit: 2,
      load_best_model_at_end: true,
      metric_for_best_model: 'loss',
      early_stopping_patience: 3,
      early_stopping_threshold: 0.001,
      zero_optimization: { stage: 1, offload_optimizer: { device: 'cpu' }, reduce_bucket_size: 1_000_000, allgather_bucket_size: 2_000_000, overlap_comm: true },
      workers: 3,
      heartbeat_interval_ms: 500,
      heartbeat_timeout_ms: 5000,
      nats: { url: 'nats://127.0.0.1:4222', subject_prefix: 'kp.test' },
    },
    { baseDir: REPO_ROOT, source: 'every-group' },
  );
  const c = r.config;
  assert.equal(c.run_name, 'exp-7');
  assert.equal(c.output_dir, resolve(REPO_ROOT, 'out/exp-7'));
  assert.deepEqual([c.seed, c.data_seed, c.model, c.dropout_rate], [7, 11, 'preset:t5-tiny', 0.05]);
  const sample = resolve(REPO_ROOT, 'shared/datasets/ko-news-sample.jsonl');
  assert.deepEqual(r.data, { kind: 'files', trainFile: sample, evalFile: sample, rulesPreset: 'v4' });
  assert.deepEqual([c.learning_rate, c.lr_scheduler_type, c.warmup_ratio, c.adam_beta1, c.adam_beta2, c.adam_epsilon], [2e-4, 'cosine', 0.06, 0.85, 0.98, 1e-6]);
  assert.deepEqual([c.max_grad_norm, c.num_train_epochs, c.logging_steps, c.dataloader_drop_last, c.group_by_length], [0.5, 2.5, 0.1, true, true]);
  assert.deepEqual([c.eval_strategy, c.eval_steps, c.save_steps, c.save_total_limit, c.metric_for_best_model, c.greater_is_better], ['steps', 50, 100, 2, 'eval_loss', false]);
  assert.deepEqual([c.early_stopping_patience, c.early_stopping_threshold], [3, 0.001]);
  assert.deepEqual(c.zero_optimization.offload_optimizer, { device: 'cpu' });
  assert.deepEqual([c.zero_optimization.reduce_bucket_size, c.zero_optimization.allgather_bucket_size, c.zero_optimization.overlap_comm], [1_000_000, 2_000_000, true]);
  assert.deepEqual(c.nats, { url: 'nats://127.0.0.1:4222', subject_prefix: 'kp.test', progress_interval_ms: 1000 });
  assert.deepEqual([r.worldSize, r.globalBatchSize, r.sharding], [3, 3 * 4 * 3, 'partition-optimizer-states']);
  // Evaluation, early stopping and checkpoints are acted on, so none of their keys is reported.
  const ignored = r.ignored.map((i) => i.key);
  for (const k of ['save_steps', 'save_total_limit', 'eval_strategy', 'eval_steps', 'load_best_model_at_end', 'early_stopping_patience', 'early_stopping_threshold', 'per_device_eval_batch_size', 'learning_rate', 'metric_for_best_model', 'nats']) {
    assert.ok(!ignored.includes(k), `${k} should be acted on`);
  }
});

test('a cache folder for data, and a model directory whose d_model sizes the "auto" buckets', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-config-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'model'));
  mkdirSync(join(dir, 'cache'));
  const config = { vocab_size: 259, d_model: 96, d_kv: 24, d_ff: 192, num_layers: 1, num_heads: 4, feed_forward_proj: 'gated-gelu', tie_word_embeddings: false };
  writeFileSync(join(dir, 'model', 'config.json'), JSON.stringify(config));
  const raw = { data: 'cache', model: 'model', zero_optimization: { stage: 2, reduce_bucket_size: 'auto', stage3_prefetch_bucket_size: 'auto', stage3_param_persistence_threshold: 'auto' } };
  // A folder without manifest.json is not a cache, and the message says how to make one.
  assert.throws(() => resolveRunConfig(raw, { baseDir: dir }), /data: no such file: .*manifest\.json; make a cache with `kp-coord data prepare`/u);
  writeFileSync(join(dir, 'cache', 'manifest.json'), '{}');
  const r = resolveRunConfig(raw, { baseDir: dir });
  assert.deepEqual(r.data, { kind: 'cache', dir: join(dir, 'cache') });
  assert.deepEqual(r.model, { kind: 'directory', path: join(dir, 'model') });
  assert.equal(r.config.model, join(dir, 'model'));
  // HF's fill-ins: hidden^2, 0.9 hidden^2 and 10 hidden.
  const z = r.config.zero_optimization;
  assert.deepEqual([z.reduce_bucket_size, z.prefetch_bucket_size, z.param_persistence_threshold], [96 * 96, Math.floor(0.9 * 96 * 96), 960]);
  // A model path without config.json is named as the bad field.
  rmSync(join(dir, 'model', 'config.json'));
  assert.throws(() => resolveRunConfig(raw, { baseDir: dir }), /model: not a model: .*config\.json: cannot read config/u);
});

test('the sharding policy follows the stage', () => {
  for (const stage of [0, 1, 2, 3] as const) {
    const r = resolveRunConfig({ zero_optimization: { stage } }, { baseDir: REPO_ROOT });
    assert.equal(r.sharding, SHARDING_POLICY_BY_STAGE[stage]);
  }
});

test('the embedded default: t5-small-bytes on the sample, 2 workers, stage 2', () => {
  const raw = embeddedDefaultConfig();
  // It is a config as written: the schema alone accepts it, and it resolves without a file.
  assert.ok(RunConfigSchema.safeParse(raw).success);
  const r = resolveRunConfig(raw, { source: 'embedded default' });
  const c = r.config;
  assert.equal(c.model, 'preset:t5-small-bytes');
  assert.deepEqual(c.data, { train_file: EMBEDDED_SAMPLE_FILE, preset: 'embedded-sample' });
  assert.deepEqual([c.per_device_train_batch_size, c.gradient_accumulation_steps], [1, 4]);
  assert.equal(c.dropout_rate, 0.1);
  assert.equal(c.zero_optimization.stage, 2);
  assert.equal(c.gradient_checkpointing, true);
  assert.equal(c.zero_optimization.reduce_bucket_size, 128 * 128, 'HF "auto": d_model squared');
  assert.equal(c.predict_with_generate, true);
  assert.deepEqual(r.ignored, [], 'the embedded default sets no key kp-coord ignores');
  assert.deepEqual([r.worldSize, r.globalBatchSize, r.sharding], [2, 8, 'partition-gradients']);
  assert.ok(c.learning_rate >= 5e-4 && c.learning_rate <= 3e-3, `lr ${c.learning_rate}`);
  // A fresh object every call: callers may change it before resolving.
  assert.notEqual(embeddedDefaultConfig(), raw);
  // --workers N is an override like any other.
  assert.equal(resolveRunConfig(embeddedDefaultConfig(), { overrides: ['workers=4'] }).globalBatchSize, 16);
});
