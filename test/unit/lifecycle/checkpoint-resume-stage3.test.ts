import test from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runToExit, weightDiff } from '../../helpers/kp-coord-process.js';

// ZeRO-3 checkpoints (each rank's chunks of every unit, a multi-range shard file) resume on another
// world size and at another stage. t5-tiny, 4 steps, evaluation every 2 steps (at stage 3 it
// gathers units too); one intra-op thread per worker so only float32 summation order can differ
// between world sizes and stages: 1e-6 of max |w|, the rule of test/unit/zero.
const BASE = [
  '--threads-per-worker', '1', '--set', 'model=preset:t5-tiny', '--set', 'max_steps=4', '--set', 'eval_strategy=steps', '--set', 'eval_steps=2',
  '--set', 'load_best_model_at_end=false', '--set', 'early_stopping_patience=null', '--set', 'gradient_accumulation_steps=1', '--set', 'gradient_checkpointing=true',
];
const STAGE3 = ['--set', 'zero_optimization.stage=3', '--set', 'zero_optimization.stage3_max_reuse_distance=0', '--set', 'zero_optimization.stage3_param_persistence_threshold=auto'];

async function run(args: string[]): Promise<string> {
  const r = await runToExit(['start', ...BASE, ...args], { timeoutMs: 240_000 });
  assert.equal(r.code, 0, r.output);
  return r.output;
}

test('ZeRO-3 checkpoints: written by 4 workers, resumed by 2 at stage 3 and at stage 2, a stage-2 checkpoint resumed at stage 3, exported; a corrupt chunk file falls back', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-ckpt3-'));
  try {
    // A: uninterrupted, 4 workers x 4 samples at stage 3, checkpoints after steps 2 and 4.
    const a = join(dir, 'a');
    await run(['--workers', '4', ...STAGE3, '--set', 'per_device_train_batch_size=4', '--set', 'save_strategy=steps', '--set', 'save_steps=2', '--set', `output_dir=${a}`]);
    const manifest = JSON.parse(readFileSync(join(a, 'checkpoint-2', 'manifest.json'), 'utf8')) as { zero_stage: number; files: { ranges?: unknown[] }[] };
    assert.equal(manifest.zero_stage, 3);
    assert.ok(manifest.files.every((f) => (f.ranges?.length ?? 0) > 1), 'each rank wrote its chunk of every unit');
    const evals = (JSON.parse(readFileSync(join(a, 'summary.json'), 'utf8')) as { eval_loss: unknown[] }).eval_loss;
    assert.equal(evals.length, 2, 'evaluated after steps 2 and 4');

    // The export of the last checkpoint is the final model (gathered unit by unit), bit for bit.
    const exported = join(dir, 'exported');
    const e = await runToExit(['export', '--checkpoint', join(a, 'checkpoint-4'), '--out', exported]);
    assert.equal(e.code, 0, e.output);
    assert.equal((await weightDiff(join(a, 'final'), exported)).worst, 0);

    // B, C: resume from checkpoint-2 with 2 workers x 8 (the same global batch of 16), at stage 3
    // and at stage 2: the chunks are re-cut for N=2 / read as whole-buffer ranges.
    // C also saves after step 3, for E below.
    for (const [name, stage, save] of [['b-stage3', STAGE3, 'save_strategy=no'], ['c-stage2', ['--set', 'zero_optimization.stage=2'], 'save_steps=1']] as const) {
      const out = join(dir, name);
      mkdirSync(out);
      cpSync(join(a, 'checkpoint-2'), join(out, 'checkpoint-2'), { recursive: true });
      const output = await run(['--workers', '2', '--resume', ...stage, '--set', 'per_device_train_batch_size=8', '--set', 'save_strategy=steps', '--set', save, '--set', `output_dir=${out}`]);
      assert.match(output, /resuming from .*checkpoint-2 \(2 steps done, written by 4 workers\)/);
      const d = await weightDiff(join(a, 'final'), join(out, 'final'));
      console.log(`${name}: max |w - w(uninterrupted, N=4 stage 3)| = ${d.worst.toExponential(2)} (${(d.worst / d.pmax).toExponential(2)} of max |w|)`);
      assert.ok(d.worst <= 1e-6 * d.pmax, `${name}: resumed differs from uninterrupted by ${d.worst}`);
    }

    // E: C's stage-2 checkpoint after step 3 (2 workers, one range each) resumed at stage 3 by 4 workers.
    const e3 = join(dir, 'e-from-stage2');
    mkdirSync(e3);
    cpSync(join(dir, 'c-stage2', 'checkpoint-3'), join(e3, 'checkpoint-3'), { recursive: true });
    const outputE = await run(['--workers', '4', '--resume', ...STAGE3, '--set', 'per_device_train_batch_size=4', '--set', 'save_strategy=no', '--set', `output_dir=${e3}`]);
    assert.match(outputE, /resuming from .*checkpoint-3 \(3 steps done, written by 2 workers\)/);
    const de = await weightDiff(join(a, 'final'), join(e3, 'final'));
    console.log(`e-from-stage2: max |w - w(uninterrupted)| = ${de.worst.toExponential(2)} (${(de.worst / de.pmax).toExponential(2)} of max |w|)`);
    assert.ok(de.worst <= 1e-6 * de.pmax, `stage-2 checkpoint resumed at stage 3 differs from uninterrupted by ${de.worst}`);

    // D: the newest checkpoint's chunk file is truncated: detected, reported, the previous one
    // used; same world size and stage, so A's weights bit for bit.
    const d = join(dir, 'd');
    mkdirSync(d);
    cpSync(join(a, 'checkpoint-2'), join(d, 'checkpoint-2'), { recursive: true });
    cpSync(join(a, 'checkpoint-4'), join(d, 'checkpoint-4'), { recursive: true });
    const shard = join(d, 'checkpoint-4', 'rank-2-of-4.safetensors');
    truncateSync(shard, statSync(shard).size - 100);
    const outputD = await run(['--workers', '4', ...STAGE3, '--resume', 'latest', '--set', 'per_device_train_batch_size=4', '--set', 'save_strategy=no', '--set', `output_dir=${d}`]);
    assert.match(outputD, /checkpoint-4 is corrupt .*truncated or replaced.*using the previous one/);
    assert.equal((await weightDiff(join(a, 'final'), join(d, 'final'))).worst, 0);
    assert.ok(existsSync(join(d, 'final', 'config.json')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
