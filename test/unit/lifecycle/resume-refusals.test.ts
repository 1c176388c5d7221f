import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runToExit } from '../../helpers/kp-coord-process.js';

// `--resume latest` never starts over on top of checkpoints it cannot use (HF Trainer refuses too),
// and a checkpoint directory without its manifest is named, not skipped silently.

const BASE = ['--threads-per-worker', '1', '--set', 'model=preset:t5-tiny', '--set', 'max_steps=2', '--set', 'eval_strategy=no', '--set', 'load_best_model_at_end=false', '--set', 'early_stopping_patience=null', '--set', 'per_device_train_batch_size=4', '--set', 'gradient_accumulation_steps=1'];
const env = { ...process.env, KPCOORD_TOKEN: 'a-test-token-of-enough-length' };

/** Every file under `dir` with its sha256: what must stay untouched. */
function fingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const path = join(dir, name);
    if (statSync(path).isFile()) out[name] = createHash('sha256').update(readFileSync(path)).digest('hex');
  }
  return out;
}

test('--resume latest: all checkpoints corrupt is refused and nothing is overwritten; a missing manifest is named; export needs --overwrite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-resume-refusals-'));
  try {
    const a = join(dir, 'a');
    const first = await runToExit(['start', ...BASE, '--workers', '1', '--set', 'save_strategy=steps', '--set', 'save_steps=1', '--set', `output_dir=${a}`], { env, timeoutMs: 180_000 });
    assert.equal(first.code, 0, first.output);

    // export: a new folder is written; an existing one only with --overwrite, and only if it holds a model.
    const exported = join(dir, 'exported');
    const ex = (out: string, ...more: string[]) => runToExit(['export', '--checkpoint', join(a, 'checkpoint-2'), '--out', out, ...more], { timeoutMs: 60_000 });
    assert.equal((await ex(exported)).code, 0);
    const modelSha = fingerprint(exported);
    const again = await ex(exported);
    assert.equal(again.code, 1, again.output);
    assert.match(again.output, /exported: already exists; pass --overwrite to replace the model in it/);
    const replaced = await ex(exported, '--overwrite');
    assert.equal(replaced.code, 0, replaced.output);
    assert.deepEqual(fingerprint(exported), modelSha, 'the same checkpoint exports the same bytes');
    const notAModel = join(dir, 'notes');
    mkdirSync(notAModel);
    writeFileSync(join(notAModel, 'keep.txt'), 'mine\n');
    const refused = await ex(notAModel, '--overwrite');
    assert.equal(refused.code, 1, refused.output);
    assert.match(refused.output, /notes: exists and is not an exported model/);
    assert.equal(readFileSync(join(notAModel, 'keep.txt'), 'utf8'), 'mine\n');

    // Both checkpoints truncated: exit 1, each named, the directories as they were, no final model.
    const b = join(dir, 'b');
    mkdirSync(b);
    for (const c of ['checkpoint-1', 'checkpoint-2']) {
      cpSync(join(a, c), join(b, c), { recursive: true });
      const shard = join(b, c, 'rank-0-of-1.safetensors');
      truncateSync(shard, statSync(shard).size - 64);
    }
    const before = fingerprint(b);
    const r = await runToExit(['start', ...BASE, '--workers', '1', '--resume', 'latest', '--set', 'save_strategy=steps', '--set', 'save_steps=1', '--set', `output_dir=${b}`], { env, timeoutMs: 180_000 });
    assert.equal(r.code, 1, r.output);
    assert.match(r.output, /no valid checkpoint to resume from/);
    assert.match(r.output, /checkpoint-2: .*truncated or replaced/);
    assert.match(r.output, /checkpoint-1: .*truncated or replaced/);
    assert.doesNotMatch(r.output, /unexpected error/);
    const after = fingerprint(b);
    for (const [name, sha] of Object.entries(before)) assert.equal(after[name], sha, `${name} was changed`);
    assert.ok(!existsSync(join(b, 'final')), 'a final model was written');

    // The newest checkpoint's manifest deleted: resumed from the previous one, and said so.
    const c = join(dir, 'c');
    mkdirSync(c);
    cpSync(join(a, 'checkpoint-1'), join(c, 'checkpoint-1'), { recursive: true });
    cpSync(join(a, 'checkpoint-2'), join(c, 'checkpoint-2'), { recursive: true });
    rmSync(join(c, 'checkpoint-2', 'manifest.json'));
    const s = await runToExit(['start', ...BASE, '--workers', '1', '--resume', 'latest', '--set', 'save_strategy=no', '--set', `output_dir=${c}`], { env, timeoutMs: 180_000 });
    assert.equal(s.code, 0, s.output);
    assert.match(s.output, /checkpoint-2 has no manifest\.json .*skipped/);
    assert.match(s.output, /resuming from .*checkpoint-1 \(1 steps done/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
