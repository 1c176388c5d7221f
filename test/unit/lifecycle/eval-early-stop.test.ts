import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHfModel } from '../../../shared/weights/hf-checkpoint.js';
import { runToExit } from '../../helpers/kp-coord-process.js';

interface Summary {
  steps: number;
  stopped_early: boolean;
  best_step: number | null;
  best_eval_loss: number | null;
  final_weights: string;
  eval_loss: { step: number; eval_loss: number }[];
}

async function startRun(out: string, sets: string[]): Promise<{ summary: Summary; output: string }> {
  const args = ['start', '--workers', '2', '--threads-per-worker', '1', '--set', `output_dir=${out}`, '--set', 'model=preset:t5-tiny', '--set', 'lr_scheduler_type=constant', '--set', 'warmup_ratio=0'];
  for (const s of sets) args.push('--set', s);
  const r = await runToExit(args, { timeoutMs: 240_000 });
  assert.equal(r.code, 0, r.output);
  return { summary: JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Summary, output: r.output };
}

// At ZeRO stage 3 evaluation gathers units, keep-best and the final model gather the whole model
// unit by unit, and predict_with_generate decodes with the saved final model.
const STAGE3 = ['zero_optimization.stage=3', 'zero_optimization.stage3_max_reuse_distance=0', 'zero_optimization.stage3_param_persistence_threshold=auto', 'gradient_checkpointing=true'];

for (const [stage, extra] of [['stage 2', []], ['stage 3', STAGE3]] as const) test(`a real run evaluates, stops early at the right evaluation, and exports the best weights (${stage})`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-early-'));
  const start = (out: string, sets: string[]) => startRun(out, [...extra, ...sets]);
  try {
    // A learning rate so small that eval_loss moves by far less than the 0.01 threshold: after the
    // first evaluation, two without a real improvement exhaust patience 2 -> stop after step 3.
    const { summary, output } = await start(join(dir, 'a'), [
      'max_steps=20', 'learning_rate=1e-7', 'eval_strategy=steps', 'eval_steps=1', 'save_strategy=steps', 'save_steps=1',
      'early_stopping_patience=2', 'early_stopping_threshold=0.01', 'load_best_model_at_end=true', 'predict_with_generate=true', 'generation_max_length=8',
    ]);
    assert.ok(existsSync(join(dir, 'a', 'eval_predictions.jsonl')), 'predict_with_generate wrote no predictions');
    assert.equal(summary.stopped_early, true);
    assert.equal(summary.steps, 3);
    assert.deepEqual(summary.eval_loss.map((e) => e.step), [0, 1, 2]);
    assert.match(output, /early stop after step 3/);
    assert.equal(summary.final_weights, 'best');
    const best = summary.best_step!;
    assert.equal(summary.best_eval_loss, Math.min(...summary.eval_loss.map((e) => e.eval_loss)));
    // Resuming from the checkpoint of the stopping evaluation (what a fault during saveFinal or a
    // restarted coordinator does) stops there again instead of training on.
    const resumed = await start(join(dir, 'a'), [
      'max_steps=20', 'learning_rate=1e-7', 'eval_strategy=steps', 'eval_steps=1', 'save_strategy=steps', 'save_steps=1',
      'early_stopping_patience=2', 'early_stopping_threshold=0.01', 'load_best_model_at_end=true', 'resume_from_checkpoint=latest',
    ]);
    assert.equal(resumed.summary.stopped_early, true);
    assert.equal(resumed.summary.steps, 3);
    assert.deepEqual(resumed.summary.eval_loss.map((e) => e.step), [0, 1, 2]);
    assert.equal(resumed.summary.final_weights, 'best');
    // The best step's weights, reproduced by a run that simply stops there (constant lr, same seed).
    await start(join(dir, 'b'), [`max_steps=${best + 1}`, 'learning_rate=1e-7']);
    const a = await loadHfModel(join(dir, 'a', 'final'));
    const b = await loadHfModel(join(dir, 'b', 'final'));
    assert.deepEqual(a.flat, b.flat, `final/ is not the weights of step ${best}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
