import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { applyOverrides } from '../../../shared/config/config-overrides.js';
import { editDistance, suggestKey } from '../../../shared/config/did-you-mean.js';
import { loadRunConfig, resolveRunConfig } from '../../../shared/config/resolve-run-config.js';
import { planSteps } from '../../../shared/config/step-plan.js';
import { InputFileError } from '../../../shared/errors.js';

test('--set values are YAML: numbers, booleans, lists; dotted keys reach into sections; null removes a key', () => {
  const r = applyOverrides({ seed: 1, data: 'cache/dir', zero_optimization: { stage: 1 } }, [
    'learning_rate=1e-3',
    'group_by_length=true',
    'zero_optimization.stage=2',
    'zero_optimization.offload_optimizer.device=cpu',
    'data.train_file=x.jsonl',
    'report_to=[none]',
    'run_name=exp-1',
    'seed=null',
    'eval_steps=',
    'nonsense',
  ]);
  assert.deepEqual(r.raw, {
    learning_rate: 1e-3,
    group_by_length: true,
    zero_optimization: { stage: 2, offload_optimizer: { device: 'cpu' } },
    // A dotted key through a string replaces it: data switches from a cache to raw files.
    data: { train_file: 'x.jsonl' },
    report_to: ['none'],
    run_name: 'exp-1',
  });
  assert.deepEqual(r.malformed.map((m) => m.text), ['nonsense']);
  assert.deepEqual(r.applied[2]!.path, ['zero_optimization', 'stage']);
});

test('overrides are merged before validation and win over the file; their errors name the --set', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-config-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'run.yaml');
  writeFileSync(file, 'learning_rate: 1.0e-4\nworkers: 2\n');
  const r = loadRunConfig(file, { overrides: ['learning_rate=3e-4', 'workers=4', 'zero_optimization.stage=1'] });
  assert.deepEqual([r.config.learning_rate, r.worldSize, r.config.zero_optimization.stage], [3e-4, 4, 1]);
  assert.throws(
    () => loadRunConfig(file, { overrides: ['workers=zero', 'learning_rat=1', 'bad key=1'] }),
    (e: unknown) =>
      e instanceof InputFileError &&
      e.message.includes('--set workers=zero: workers: expected a number (got "zero")') &&
      e.message.includes('--set learning_rat=1: learning_rat: unknown key; did you mean learning_rate?') &&
      e.message.includes('--set bad key=1: expected key=value') &&
      e.message.includes('3 problems'),
  );
  // An override fixes a bad value in the file.
  writeFileSync(file, 'learning_rate: -1\n');
  assert.equal(loadRunConfig(file, { overrides: ['learning_rate=1e-3'] }).config.learning_rate, 1e-3);
});

test('planSteps: HF arithmetic over the sampler\'s global batches', () => {
  // 88 samples, global batch 8 -> 11 steps an epoch.
  const r = resolveRunConfig({ per_device_train_batch_size: 4, workers: 2, num_train_epochs: 4, warmup_ratio: 0.1, logging_steps: 0.25, eval_strategy: 'steps', eval_steps: 0.5 });
  assert.deepEqual(planSteps(r, 88), { stepsPerEpoch: 11, totalSteps: 44, epochs: 4, warmupSteps: 5, loggingSteps: 11, evalSteps: 22, saveSteps: 500 });
  // A short last batch is a step unless dataloader_drop_last.
  assert.equal(planSteps(r, 90).stepsPerEpoch, 12);
  const dropLast = resolveRunConfig({ per_device_train_batch_size: 4, workers: 2, dataloader_drop_last: true });
  assert.equal(planSteps(dropLast, 90).stepsPerEpoch, 11);
  assert.throws(() => planSteps(dropLast, 7), /dataloader_drop_last: the training split's 7 samples are fewer than one global batch of 8/u);
  // Fractional epochs, as HF: ceil(2.5 x 11) steps over 3 epochs begun.
  const partial = resolveRunConfig({ per_device_train_batch_size: 4, workers: 2, num_train_epochs: 2.5 });
  assert.deepEqual([planSteps(partial, 88).totalSteps, planSteps(partial, 88).epochs], [28, 3]);
  // max_steps wins over epochs; warmup_steps wins over warmup_ratio.
  const capped = resolveRunConfig({ per_device_train_batch_size: 4, workers: 2, max_steps: 30, warmup_steps: 3, warmup_ratio: 0.5 });
  assert.deepEqual([planSteps(capped, 88).totalSteps, planSteps(capped, 88).epochs, planSteps(capped, 88).warmupSteps], [30, 3, 3]);
});

test('did you mean: edit distance within a third of the length, and known aliases', () => {
  assert.equal(editDistance('learning_rat', 'learning_rate'), 1);
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('', 'abc'), 3);
  const keys = ['learning_rate', 'seed', 'workers', 'warmup_steps', 'warmup_ratio'];
  assert.equal(suggestKey('learning_rat', keys), 'learning_rate');
  assert.equal(suggestKey('LEARNING_RATE', keys), 'learning_rate');
  assert.equal(suggestKey('warmup_step', keys), 'warmup_steps');
  assert.equal(suggestKey('sed', keys), 'seed');
  assert.equal(suggestKey('fp16', keys), undefined);
  assert.equal(suggestKey('lr', keys), 'learning_rate');
});
