import test from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runToExit, weightDiff } from '../../helpers/kp-coord-process.js';

// t5-tiny, 4 steps, no evaluation; one intra-op thread per worker so only summation order can
// differ between world sizes.
const BASE = ['--threads-per-worker', '1', '--set', 'model=preset:t5-tiny', '--set', 'max_steps=4', '--set', 'eval_strategy=no', '--set', 'load_best_model_at_end=false', '--set', 'early_stopping_patience=null', '--set', 'gradient_accumulation_steps=1'];

async function run(args: string[]): Promise<string> {
  const r = await runToExit(['start', ...BASE, ...args], { timeoutMs: 240_000 });
  assert.equal(r.code, 0, r.output);
  return r.output;
}

test('checkpoints: resume with 2 workers from 4, a corrupt shard falls back, export, save_total_limit', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-ckpt-'));
  try {
    // A: uninterrupted, 4 workers x 4 samples, checkpoints after steps 2 and 4.
    const a = join(dir, 'a');
    await run(['--workers', '4', '--set', 'per_device_train_batch_size=4', '--set', 'save_strategy=steps', '--set', 'save_steps=2', '--set', `output_dir=${a}`]);
    assert.ok(existsSync(join(a, 'checkpoint-2', 'manifest.json')) && existsSync(join(a, 'checkpoint-4', 'manifest.json')));

    // Export of the last checkpoint = the final model, bit for bit.
    const exported = join(dir, 'exported');
    const e = await runToExit(['export', '--checkpoint', join(a, 'checkpoint-4'), '--out', exported]);
    assert.equal(e.code, 0, e.output);
    assert.equal((await weightDiff(join(a, 'final'), exported)).worst, 0);

    // B: resume from checkpoint-2 with 2 workers x 8 (the same global batch of 16): the ranges
    // are re-sliced; the result equals A up to float32 summation order (1e-6 of max |w|).
    const b = join(dir, 'b');
    mkdirSync(b);
    cpSync(join(a, 'checkpoint-2'), join(b, 'checkpoint-2'), { recursive: true });
    const outputB = await run(['--workers', '2', '--resume', '--set', 'per_device_train_batch_size=8', '--set', 'save_strategy=no', '--set', `output_dir=${b}`]);
    assert.match(outputB, /resuming from .*checkpoint-2 \(2 steps done, written by 4 workers\)/);
    const summaryB = JSON.parse(readFileSync(join(b, 'summary.json'), 'utf8')) as { train_loss: { step: number }[] };
    assert.deepEqual(summaryB.train_loss.map((s) => s.step), [2, 3], 'a resumed run starts after the checkpoint');
    const ab = await weightDiff(join(a, 'final'), join(b, 'final'));
    assert.ok(ab.worst <= 1e-6 * ab.pmax, `resumed (N=2) differs from uninterrupted (N=4) by ${ab.worst}`);

    // C: the newest checkpoint's shard is truncated: detected by size/checksum, reported, and the
    // previous checkpoint used; same world size, so the result is A's bit for bit.
    const c = join(dir, 'c');
    mkdirSync(c);
    cpSync(join(a, 'checkpoint-2'), join(c, 'checkpoint-2'), { recursive: true });
    cpSync(join(a, 'checkpoint-4'), join(c, 'checkpoint-4'), { recursive: true });
    const shard = join(c, 'checkpoint-4', 'rank-1-of-4.safetensors');
    truncateSync(shard, statSync(shard).size - 100);
    const outputC = await run(['--workers', '4', '--resume', 'latest', '--set', 'per_device_train_batch_size=4', '--set', 'save_strategy=no', '--set', `output_dir=${c}`]);
    assert.match(outputC, /checkpoint-4 is corrupt .*truncated or replaced.*using the previous one/);
    assert.equal((await weightDiff(join(a, 'final'), join(c, 'final'))).worst, 0);

    // A resume that changes the global batch is refused.
    const bad = await runToExit(['start', ...BASE, '--workers', '2', '--resume', join(a, 'checkpoint-2'), '--set', 'per_device_train_batch_size=4', '--set', `output_dir=${join(dir, 'bad')}`]);
    assert.equal(bad.code, 1);
    assert.match(bad.output, /keep the global batch/);

    // D: save every step with save_total_limit 2: only the two newest remain.
    const d = join(dir, 'd');
    await run(['--workers', '2', '--set', 'save_strategy=steps', '--set', 'save_steps=1', '--set', 'save_total_limit=2', '--set', `output_dir=${d}`]);
    assert.deepEqual(readdirSync(d).filter((n) => n.startsWith('checkpoint-')).sort(), ['checkpoint-3', 'checkpoint-4']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
