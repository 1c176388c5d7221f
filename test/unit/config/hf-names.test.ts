import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { loadRunConfig, resolveRunConfig } from '../../../shared/config/resolve-run-config.js';
import { parseAdamWOptions } from '../../../shared/optim/adamw.js';
import { parseLrScheduleOptions } from '../../../shared/optim/schedules.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'config');

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kp-config-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("the team's HF Trainer + DeepSpeed setup reads as written", () => {
  const r = loadRunConfig(join(FIXTURES, 'hf-trainer-style.yaml'), { baseDir: REPO_ROOT });
  const c = r.config;
  assert.equal(c.run_name, 'pko-t5-base-v4');
  assert.deepEqual([c.learning_rate, c.weight_decay, c.adam_beta1, c.adam_beta2, c.adam_epsilon, c.max_grad_norm], [1.8e-5, 0.01, 0.9, 0.999, 1e-8, 1]);
  // evaluation_strategy (the pre-4.46 name) lands as eval_strategy; the old key is gone.
  assert.equal(c.eval_strategy, 'epoch');
  assert.equal((c as Record<string, unknown>).evaluation_strategy, undefined);
  assert.deepEqual([c.save_strategy, c.save_total_limit, c.load_best_model_at_end, c.metric_for_best_model, c.greater_is_better, c.early_stopping_patience], ['epoch', 2, true, 'eval_loss', false, 3]);
  // data_seed: null is HF's None: absent.
  assert.equal(Object.hasOwn(c, 'data_seed'), false);
  assert.deepEqual([r.worldSize, r.globalBatchSize, r.sharding], [6, 48, 'partition-gradients']);
  assert.equal(r.deepspeedFile, join(FIXTURES, 'ds_config_zero2_auto.json'));
  // The optimizer and schedule parsers take the resolved config as it is (HF names).
  assert.deepEqual(parseAdamWOptions(c), { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
  assert.deepEqual(parseLrScheduleOptions(c), { learningRate: 1.8e-5, type: 'linear', warmupRatio: 0, warmupSteps: 0 });
  // bf16 and report_to are HF keys with no effect here: accepted, dropped, and said so.
  const ignored = new Map(r.ignored.map((i) => [i.key, i]));
  assert.match(ignored.get('bf16')?.reason ?? '', /float32 on CPU/u);
  assert.ok(ignored.has('report_to'));
  assert.equal(Object.hasOwn(c, 'bf16'), false);
  assert.equal(Object.hasOwn(c, 'deepspeed'), false);
  // Where an ignored key was set is given by line.
  assert.equal(ignored.get('bf16')?.from, 'line 32');
});

test('HF-name round trip: the resolved config, written as YAML and read back, resolves to itself', (t) => {
  const dir = scratch(t);
  for (const source of ['hf-trainer-style.yaml']) {
    const first = loadRunConfig(join(FIXTURES, source), { baseDir: REPO_ROOT });
    const file = join(dir, 'round-trip.yaml');
    writeFileSync(file, stringify(first.config));
    const second = loadRunConfig(file);
    assert.deepEqual(second.config, first.config);
    assert.deepEqual([second.worldSize, second.globalBatchSize, second.sharding], [first.worldSize, first.globalBatchSize, first.sharding]);
    // As JSON too.
    const json = join(dir, 'round-trip.json');
    writeFileSync(json, JSON.stringify(first.config, null, 2));
    assert.deepEqual(loadRunConfig(json).config, first.config);
  }
  const fromEmpty = resolveRunConfig({}, { baseDir: REPO_ROOT });
  assert.deepEqual(resolveRunConfig(structuredClone(fromEmpty.config)).config, fromEmpty.config);
});

test('eval_strategy and evaluation_strategy: either name; both must agree', () => {
  assert.equal(resolveRunConfig({ evaluation_strategy: 'steps' }).config.eval_strategy, 'steps');
  assert.equal(resolveRunConfig({ eval_strategy: 'epoch', evaluation_strategy: 'epoch' }).config.eval_strategy, 'epoch');
  assert.throws(() => resolveRunConfig({ eval_strategy: 'epoch', evaluation_strategy: 'steps' }), /evaluation_strategy: "steps" disagrees with eval_strategy "epoch"/u);
});

test("eval_steps defaults to logging_steps under eval_strategy steps, as HF's does", () => {
  const c = resolveRunConfig({ eval_strategy: 'steps', logging_steps: 25 }).config;
  assert.equal(c.eval_steps, 25);
  assert.equal(resolveRunConfig({ eval_strategy: 'epoch' }).config.eval_steps, undefined);
});

test('HF lifecycle rules: best model needs matching save/eval strategies; early stopping needs evaluation and best-model loading', () => {
  assert.throws(() => resolveRunConfig({ load_best_model_at_end: true, eval_strategy: 'epoch' }), /load_best_model_at_end: needs save_strategy \("steps"\) to match eval_strategy \("epoch"\)/u);
  assert.throws(
    () => resolveRunConfig({ load_best_model_at_end: true, eval_strategy: 'steps', eval_steps: 30, save_steps: 100 }),
    /save_steps: with load_best_model_at_end, save_steps \(100\) must be a multiple of eval_steps \(30\)/u,
  );
  assert.equal(resolveRunConfig({ load_best_model_at_end: true, eval_strategy: 'steps', eval_steps: 50, save_steps: 100 }).config.save_steps, 100);
  assert.throws(() => resolveRunConfig({ early_stopping_patience: 3 }), (e: unknown) => e instanceof Error && /early_stopping_patience: needs evaluations/u.test(e.message) && /needs load_best_model_at_end: true/u.test(e.message));
  assert.throws(() => resolveRunConfig({ save_strategy: 'best' }), /save_strategy: "best" needs evaluations/u);
});

test('metric_for_best_model: "loss" means eval_loss (HF prefixes eval_); other metrics are not computed in training', () => {
  assert.equal(resolveRunConfig({ metric_for_best_model: 'loss' }).config.metric_for_best_model, 'eval_loss');
  assert.throws(() => resolveRunConfig({ metric_for_best_model: 'eval_f1' }), /metric_for_best_model: expected "eval_loss"/u);
});

test('optim names the AdamW variants HF has; anything else is refused', () => {
  assert.equal(resolveRunConfig({ optim: 'adamw_torch_fused' }).config.optim, 'adamw_torch_fused');
  assert.throws(() => resolveRunConfig({ optim: 'adafactor' }), /optim: expected adamw_torch, adamw_torch_fused or adamw_hf \(kp-coord implements AdamW only\)/u);
});
