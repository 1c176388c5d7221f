import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadRunConfig, resolveRunConfig, type ResolvedRunConfig } from '../../../shared/config/resolve-run-config.js';
import { InputFileError } from '../../../shared/errors.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const DS_FIXTURE = join(REPO_ROOT, 'test', 'fixtures', 'config', 'ds_config_zero2_auto.json');

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kp-config-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The parts of the fixture the tests edit. */
interface DsFixture {
  [key: string]: unknown;
  optimizer: { type: string; params: Record<string, unknown> };
  scheduler: { type: string; params: Record<string, unknown> };
  zero_optimization: Record<string, unknown> & { offload_optimizer: Record<string, unknown> };
}

/** The fixture with `edit` applied, written to a scratch file; returns its path. */
function dsVariant(dir: string, edit: (ds: DsFixture) => void, name = 'ds.json'): string {
  const ds = JSON.parse(readFileSync(DS_FIXTURE, 'utf8')) as DsFixture;
  edit(ds);
  const file = join(dir, name);
  writeFileSync(file, `${JSON.stringify(ds, null, 2)}\n`);
  return file;
}

function errorOf(fn: () => unknown): InputFileError {
  try {
    fn();
  } catch (e) {
    if (e instanceof InputFileError) return e;
    throw e;
  }
  assert.fail('expected an InputFileError');
}

const ignoredKeys = (r: ResolvedRunConfig): string[] => r.ignored.map((i) => i.key);

test('the ZeRO fixture ("auto" everywhere, stage 2) takes our values and its zero_optimization section', () => {
  const r = resolveRunConfig(
    { deepspeed: DS_FIXTURE, model: 'preset:pko-t5-base', per_device_train_batch_size: 8, learning_rate: 1.8e-5, weight_decay: 0.01, workers: 6 },
    { baseDir: REPO_ROOT },
  );
  const c = r.config;
  assert.deepEqual([c.per_device_train_batch_size, c.gradient_accumulation_steps, c.max_grad_norm, c.learning_rate, c.weight_decay, c.adam_epsilon], [8, 1, 1, 1.8e-5, 0.01, 1e-8]);
  // WarmupDecayLR is HF's linear schedule.
  assert.equal(c.lr_scheduler_type, 'linear');
  const z = c.zero_optimization;
  assert.equal(z.stage, 2);
  assert.equal(r.sharding, 'partition-gradients');
  assert.deepEqual(z.offload_optimizer, { device: 'cpu', pin_memory: true });
  // "auto" buckets from pko-t5-base's d_model 768, as HF fills them.
  assert.deepEqual([z.reduce_bucket_size, z.prefetch_bucket_size, z.param_persistence_threshold], [768 * 768, Math.floor(0.9 * 768 * 768), 7680]);
  assert.equal(z.sub_group_size, 1e9);
  const ignored = ignoredKeys(r);
  for (const k of ['fp16', 'bf16', 'steps_per_print', 'wall_clock_breakdown', 'zero_optimization.contiguous_gradients', 'zero_optimization.sub_group_size', 'zero_optimization.offload_optimizer.pin_memory', 'zero_optimization.stage3_max_live_parameters', 'zero_optimization.offload_param.device']) {
    assert.ok(ignored.includes(k), `${k} in ${ignored.join(', ')}`);
  }
  for (const k of ['zero_optimization.stage', 'zero_optimization.offload_optimizer.device', 'zero_optimization.overlap_comm', 'zero_optimization.reduce_bucket_size']) assert.ok(!ignored.includes(k), k);
  const bf16 = r.ignored.find((i) => i.key === 'bf16')!;
  assert.equal(bf16.from, DS_FIXTURE);
  assert.match(bf16.reason, /float32 on CPU/u);
  assert.match(r.ignored.find((i) => i.key === 'zero_optimization.offload_param.device')!.reason, /stage 3 only/u);
  assert.match(r.ignored.find((i) => i.key === 'zero_optimization.stage3_max_live_parameters')!.reason, /stage 3 setting; this run uses stage 2/u);
});

test('explicit DeepSpeed values are taken where our config leaves the key at its default', (t) => {
  const dir = scratch(t);
  const ds = dsVariant(dir, (d) => {
    d.train_micro_batch_size_per_gpu = 4;
    d.gradient_accumulation_steps = 2;
    d.gradient_clipping = 0.5;
    d.optimizer.params = { lr: 3e-4, betas: [0.9, 0.95], eps: 1e-6, weight_decay: 0.1 };
    d.scheduler = { type: 'WarmupLR', params: { warmup_min_lr: 0, warmup_max_lr: 3e-4, warmup_num_steps: 100, warmup_type: 'linear' } };
    d.train_batch_size = 16;
  });
  const r = resolveRunConfig({ deepspeed: ds, workers: 2 }, { baseDir: REPO_ROOT });
  const c = r.config;
  assert.deepEqual(
    [c.per_device_train_batch_size, c.gradient_accumulation_steps, c.max_grad_norm, c.learning_rate, c.adam_beta1, c.adam_beta2, c.adam_epsilon, c.weight_decay, c.lr_scheduler_type, c.warmup_steps],
    [4, 2, 0.5, 3e-4, 0.9, 0.95, 1e-6, 0.1, 'constant_with_warmup', 100],
  );
  assert.equal(r.globalBatchSize, 16);
});

test('conflicts between explicit DeepSpeed values and ours name both, with their lines, in one error', (t) => {
  const dir = scratch(t);
  const ds = dsVariant(dir, (d) => {
    d.train_micro_batch_size_per_gpu = 4;
    d.gradient_clipping = 0.5;
    d.optimizer.params.lr = 3e-4;
    d.optimizer.params.betas = [0.9, 0.95];
    d.zero_optimization.stage = 1;
    d.zero_optimization.offload_optimizer.device = 'none';
  });
  const cfg = join(dir, 'run.yaml');
  writeFileSync(cfg, `deepspeed: ${ds}\nper_device_train_batch_size: 8\nmax_grad_norm: 1.0\nlearning_rate: 1.0e-4\nzero_optimization:\n  stage: 2\n`);
  const e = errorOf(() => loadRunConfig(cfg, { overrides: ['adam_beta2=0.98', 'zero_optimization.offload_optimizer.device=cpu'] }));
  const dsLine = (key: string): number => readFileSync(ds, 'utf8').split('\n').findIndex((l) => l.includes(`"${key}"`)) + 1;
  const m = e.message;
  assert.ok(m.startsWith(`${cfg}: invalid run config: 6 problems:`), m);
  assert.ok(m.includes(`${ds} line ${dsLine('train_micro_batch_size_per_gpu')}: train_micro_batch_size_per_gpu: 4 conflicts with per_device_train_batch_size: 8 (line 2); make them equal or set the DeepSpeed value to "auto"`), m);
  assert.ok(m.includes(`${ds} line ${dsLine('gradient_clipping')}: gradient_clipping: 0.5 conflicts with max_grad_norm: 1 (line 3)`), m);
  assert.ok(m.includes(`${ds} line ${dsLine('lr')}: optimizer.params.lr: 0.0003 conflicts with learning_rate: 0.0001 (line 4)`), m);
  assert.ok(m.includes('optimizer.params.betas[1]: 0.95 conflicts with adam_beta2: 0.98 (--set adam_beta2=0.98)'), m);
  assert.ok(m.includes(`${ds} line ${dsLine('stage')}: zero_optimization.stage: 1 conflicts with zero_optimization.stage: 2 (line 6); make them equal or remove one`), m);
  assert.ok(m.includes('zero_optimization.offload_optimizer.device: "none" conflicts with zero_optimization.offload_optimizer.device: "cpu" (--set zero_optimization.offload_optimizer.device=cpu)'), m);
});

test('our zero_optimization and the file\'s merge key by key', (t) => {
  const dir = scratch(t);
  const ds = dsVariant(dir, (d) => {
    delete d.zero_optimization.overlap_comm;
  });
  const r = resolveRunConfig({ deepspeed: ds, zero_optimization: { stage: 2, overlap_comm: false, allgather_bucket_size: 1000 } }, { baseDir: REPO_ROOT });
  const z = r.config.zero_optimization;
  assert.deepEqual([z.stage, z.overlap_comm, z.allgather_bucket_size, z.offload_optimizer.device], [2, false, 1000, 'cpu']);
});

test('train_batch_size must equal per-device x accumulation x workers', (t) => {
  const dir = scratch(t);
  const ds = dsVariant(dir, (d) => {
    d.train_batch_size = 32;
  });
  assert.throws(
    () => resolveRunConfig({ deepspeed: ds, per_device_train_batch_size: 4, gradient_accumulation_steps: 2, workers: 2 }),
    /train_batch_size: 32 conflicts with per_device_train_batch_size 4 x gradient_accumulation_steps 2 x workers 2 = 16/u,
  );
  assert.equal(resolveRunConfig({ deepspeed: ds, per_device_train_batch_size: 4, gradient_accumulation_steps: 4, workers: 2 }).globalBatchSize, 32);
});

test("the scheduler section picks the schedule as in HF, and must agree with an explicit lr_scheduler_type", (t) => {
  const dir = scratch(t);
  const warmupLr = dsVariant(dir, (d) => {
    d.scheduler.type = 'WarmupLR';
  });
  assert.equal(resolveRunConfig({ deepspeed: warmupLr }).config.lr_scheduler_type, 'constant_with_warmup');
  assert.throws(() => resolveRunConfig({ deepspeed: warmupLr, lr_scheduler_type: 'linear' }), /scheduler\.type: "WarmupLR" conflicts with lr_scheduler_type: "linear"/u);
  const cosine = dsVariant(dir, (d) => {
    d.scheduler.type = 'WarmupCosineLR';
  }, 'cosine.json');
  assert.throws(() => resolveRunConfig({ deepspeed: cosine }), /scheduler\.type: expected "WarmupDecayLR" \(HF linear\) or "WarmupLR"/u);
  // DeepSpeed warms up on a log curve unless told otherwise; HF's schedules are linear.
  assert.throws(() => resolveRunConfig({ deepspeed: DS_FIXTURE, warmup_steps: 10 }), /warmup_type: absent, so DeepSpeed would warm up with its default "log" curve/u);
  const linearWarmup = dsVariant(dir, (d) => {
    d.scheduler.params.warmup_type = 'linear';
    d.scheduler.params.warmup_num_steps = 10;
  }, 'linear.json');
  assert.equal(resolveRunConfig({ deepspeed: linearWarmup }).config.warmup_steps, 10);
  assert.throws(() => resolveRunConfig({ deepspeed: linearWarmup, warmup_ratio: 0.1 }), /warmup_num_steps: 10 conflicts with warmup_ratio: 0\.1/u);
  const total = dsVariant(dir, (d) => {
    d.scheduler.params.total_num_steps = 500;
  }, 'total.json');
  assert.throws(() => resolveRunConfig({ deepspeed: total }), /total_num_steps: 500: the run's length comes from num_train_epochs/u);
  assert.equal(resolveRunConfig({ deepspeed: total, max_steps: 500 }).config.max_steps, 500);
});

test('what the DeepSpeed file may not say: other optimizers, features that change training, typos', (t) => {
  const dir = scratch(t);
  const ds = dsVariant(dir, (d) => {
    d.optimizer.type = 'Lamb';
    d.curriculum_learning = { enabled: true };
    d.gradient_cliping = 1.0;
    d.zero_optimization.stage = 3;
    d.some_future_key = true;
  });
  const e = errorOf(() => resolveRunConfig({ deepspeed: ds }));
  assert.match(e.message, /optimizer\.type: expected "AdamW" or "Adam" \(kp-coord implements AdamW only\)/u);
  assert.match(e.message, /curriculum_learning: curriculum learning is not implemented in kp-coord; remove the section/u);
  assert.match(e.message, /gradient_cliping: unknown key; did you mean gradient_clipping\?/u);
  assert.match(e.message, /3 problems/u);
  // A key DeepSpeed itself would ignore is only reported as ignored (checked below without the errors).
  assert.doesNotMatch(e.message, /some_future_key/u);
  const ok = dsVariant(dir, (d) => {
    d.some_future_key = true;
  }, 'future.json');
  assert.match(resolveRunConfig({ deepspeed: ok }).ignored.find((i) => i.key === 'some_future_key')!.reason, /DeepSpeed ignores unknown top-level keys too/u);
});

test('a missing or malformed DeepSpeed file is a bad `deepspeed` field', (t) => {
  const dir = scratch(t);
  assert.throws(() => resolveRunConfig({ deepspeed: 'nope.json' }, { baseDir: dir }), /deepspeed: .*nope\.json: cannot read the file/u);
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{\n  "zero_optimization": {\n    "stage": 2,\n  }\n}\n');
  assert.throws(() => resolveRunConfig({ deepspeed: bad }), /deepspeed: .*bad\.json:\d+: not valid JSON/u);
});
