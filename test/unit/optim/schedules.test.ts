import test from 'node:test';
import assert from 'node:assert/strict';
import { InputFileError, OptimizerError } from '../../../shared/errors.js';
import { lrSchedule, parseLrScheduleOptions, resolveWarmupSteps, type LrScheduleOptionsInput } from '../../../shared/optim/schedules.js';

// Expected multipliers are worked out by hand from HF's formulas (transformers/optimization.py):
//   warm-up (step < w): step / max(1, w)
//   linear:  max(0, (T - step) / max(1, T - w))
//   cosine:  max(0, 0.5 * (1 + cos(pi * 0.5 * 2 * (step - w) / max(1, T - w))))
// Tolerance: 1e-15 absolute for values that are exact fractions (the code computes them with one
// float64 division, 1.1e-16 relative) and for cosines (Math.cos is within an ulp or two).
const TOL = 1e-15;

function factors(input: LrScheduleOptionsInput, total: number, steps: readonly number[]): number[] {
  const schedule = lrSchedule(parseLrScheduleOptions(input), total);
  return steps.map((k) => schedule.factorAt(k));
}

function assertClose(actual: readonly number[], expected: readonly number[], what: string): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]!) <= TOL, `${what}: step #${i}: ${a} vs ${expected[i]}`));
}

test('linear without warm-up (the team setup): 1 at step 0, (T - k)/T after, 0 at and past the end', () => {
  assertClose(factors({ lr_scheduler_type: 'linear' }, 10, [0, 1, 5, 9, 10, 11]), [1, 0.9, 0.5, 0.1, 0, 0], 'linear T=10');
});

test('linear with 3 warm-up steps of 10', () => {
  // warm-up 0, 1/3, 2/3; then (10 - k)/7 from k = 3.
  assertClose(factors({ lr_scheduler_type: 'linear', warmup_steps: 3 }, 10, [0, 1, 2, 3, 4, 9, 10, 12]), [0, 1 / 3, 2 / 3, 1, 6 / 7, 1 / 7, 0, 0], 'linear');
});

test('cosine with 2 warm-up steps of 10 (num_cycles 0.5), rising again past the end as HF does', () => {
  // progress = (k - 2)/8: k=4 -> 1/4: 0.5(1 + cos(pi/4)) = 0.5 + sqrt(2)/4; k=6 -> 1/2: 0.5;
  // k=8 -> 3/4: 0.5 - sqrt(2)/4; k=10 -> 1: 0; k=12 -> 5/4: 0.5(1 + cos(5pi/4)) = 0.5 - sqrt(2)/4.
  const r = Math.SQRT2 / 4;
  assertClose(factors({ lr_scheduler_type: 'cosine', warmup_steps: 2 }, 10, [0, 1, 2, 4, 6, 8, 10, 12]), [0, 0.5, 1, 0.5 + r, 0.5, 0.5 - r, 0, 0.5 - r], 'cosine');
  // Without warm-up, step 0 is the full rate and the last step (T-1) nearly 0.
  assertClose(factors({ lr_scheduler_type: 'cosine' }, 4, [0, 1, 2, 3]), [1, 0.5 + r, 0.5, 0.5 - r], 'cosine T=4');
});

test('constant and constant_with_warmup', () => {
  assertClose(factors({ lr_scheduler_type: 'constant', warmup_steps: 5 }, 10, [0, 3, 9, 100]), [1, 1, 1, 1], 'constant ignores warm-up');
  assertClose(factors({ lr_scheduler_type: 'constant_with_warmup', warmup_steps: 4 }, 10, [0, 1, 3, 4, 9, 50]), [0, 0.25, 0.75, 1, 1, 1], 'constant_with_warmup');
  assertClose(factors({ lr_scheduler_type: 'constant_with_warmup' }, 10, [0, 9]), [1, 1], 'no warm-up');
});

test('warm-up from a ratio is ceil(ratio * total); warmup_steps > 0 wins over the ratio', () => {
  const steps = (input: LrScheduleOptionsInput, total: number) => resolveWarmupSteps(parseLrScheduleOptions(input), total);
  assert.equal(steps({ warmup_ratio: 0.1 }, 95), 10); // ceil(9.5)
  assert.equal(steps({ warmup_ratio: 0.1 }, 100), 10);
  // As in Python: 100 * 0.07 = 7.000000000000001, so HF warms up for 8 steps, and so do we.
  assert.equal(steps({ warmup_ratio: 0.07 }, 100), 8);
  assert.equal(steps({ warmup_ratio: 0.1, warmup_steps: 7 }, 100), 7);
  assert.equal(steps({ warmup_ratio: 0 }, 100), 0);
  assert.equal(steps({ warmup_ratio: 1 }, 100), 100);
  assertClose(factors({ lr_scheduler_type: 'linear', warmup_ratio: 0.25 }, 8, [0, 1, 2, 3, 7]), [0, 0.5, 1, 5 / 6, 1 / 6], 'ratio 0.25 of 8 -> 2 steps');
});

test('lrAt is learning_rate * lambda(step), and the schedule is frozen', () => {
  const schedule = lrSchedule(parseLrScheduleOptions({ learning_rate: 3e-6 * 6, lr_scheduler_type: 'linear' }), 1000);
  for (const k of [0, 1, 500, 999, 1000]) assert.equal(schedule.lrAt(k), 3e-6 * 6 * schedule.factorAt(k));
  assert.equal(schedule.lrAt(0), 3e-6 * 6);
  assert.equal(schedule.lrAt(1000), 0);
  assert.ok(Object.isFrozen(schedule));
  assert.equal(schedule.warmupSteps, 0);
});

test('defaults are HF TrainingArguments defaults', () => {
  assert.deepEqual(parseLrScheduleOptions({}), { learningRate: 5e-5, type: 'linear', warmupRatio: 0, warmupSteps: 0 });
});

test('bad options name the field and the file; bad steps are refused', () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ lr_scheduler_type: 'polynomial' }, /lr_scheduler_type: expected one of linear, cosine, constant, constant_with_warmup/],
    [{ warmup_ratio: 1.5 }, /warmup_ratio/],
    [{ warmup_steps: 2.5 }, /warmup_steps/],
    [{ warmup_steps: -1 }, /warmup_steps/],
    [{ learning_rate: -1e-5 }, /learning_rate/],
    [{ learning_rate: 'fast' }, /learning_rate/],
  ];
  for (const [input, message] of bad) {
    assert.throws(
      () => parseLrScheduleOptions(input, 'run.yaml'),
      (e: unknown) => e instanceof InputFileError && e.message.startsWith('run.yaml: ') && message.test(e.message),
      JSON.stringify(input),
    );
  }
  const schedule = lrSchedule(parseLrScheduleOptions({}), 10);
  assert.throws(() => schedule.lrAt(-1), OptimizerError);
  assert.throws(() => schedule.lrAt(1.5), OptimizerError);
  assert.throws(() => lrSchedule(parseLrScheduleOptions({}), 0), /total steps 0/);
});
