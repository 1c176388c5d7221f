import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runToExit } from '../../helpers/kp-coord-process.js';

// A failure that the same inputs repeat is not a lost worker: a truncated model.safetensors fails
// the run at once, naming the file, instead of restarting the round max_restarts times.

const env = { ...process.env, KPCOORD_TOKEN: 'a-test-token-of-enough-length' };

test('a truncated model.safetensors fails the run once, naming the file; no restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-truncated-model-'));
  try {
    const model = join(dir, 'model');
    const init = await runToExit(['dev', 'init-model', '--preset', 't5-tiny', '--out', model], { timeoutMs: 60_000 });
    assert.equal(init.code, 0, init.output);
    const weights = join(model, 'model.safetensors');
    truncateSync(weights, Math.floor(statSync(weights).size / 2));
    const out = join(dir, 'run');
    const r = await runToExit(
      ['start', '--workers', '2', '--set', `output_dir=${out}`, '--set', `model=${model}`, '--set', 'max_steps=2', '--set', 'max_restarts=3'],
      { env, timeoutMs: 180_000 },
    );
    assert.equal(r.code, 1, r.output);
    assert.match(r.output, /model\.safetensors/);
    assert.match(r.output, /not restarting: the same inputs would fail again/);
    assert.doesNotMatch(r.output, /giving up after 3 restarts/);
    assert.doesNotMatch(r.output, /unexpected error/);
    // Each worker tried its setup once.
    const logs = readdirSync(join(out, 'logs')).map((f) => readFileSync(join(out, 'logs', f), 'utf8')).join('\n');
    assert.ok((logs.match(/"msg":"command failed"/g) ?? []).length <= 2, logs);
    assert.doesNotMatch(logs, /registering again/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
