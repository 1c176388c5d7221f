import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { faultRunSettings, faultTrial, matchesReference, referenceRun, seededPicker, TOTAL_STEPS, type FaultKind } from '../../helpers/fault-trial.js';
import { CliProcess, survivors, workerPids } from '../../helpers/kp-coord-process.js';

// Faults injected into real runs (worker processes on gRPC, real files): each run must finish by
// itself and end with the uninterrupted run's weights. A few trials here; bench/faults.ts runs
// the 20-trial soak. The step and victim are random; the seed is printed so a failure can be
// replayed (KP_FAULT_SEED=<seed>).
//
// Tolerance (matchesReference in test/helpers/fault-trial.ts): bit-identical when the world is
// unchanged — a rollback redoes the same steps with the same samples, dropout masks and summation
// order (one thread per worker). When a survivor goes on alone: within 1e-6 of max |w|, since the
// gradient norm's float64 sum is then split differently and can flip a float32 rounding.

const seed = Number(process.env.KP_FAULT_SEED ?? Date.now() % 100_000);
const pick = seededPicker(seed);

test(`faults: kill -9, SIGSTOP, truncated shard, coordinator killed, worker lost for good (seed ${seed})`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-faults-'));
  try {
    const reference = await referenceRun(join(dir, 'reference'));
    const trials: [FaultKind, number][] = [
      ['kill-worker', pick(1, TOTAL_STEPS - 1)],
      ['stop-worker', pick(1, TOTAL_STEPS - 1)],
      // After step 5 checkpoints 2 and 4 exist: the truncated one is 4, the rollback goes to 2.
      ['truncate-shard', 5],
      ['kill-coordinator', pick(1, TOTAL_STEPS - 1)],
      ['lose-worker', pick(1, TOTAL_STEPS - 1)],
    ];
    for (const [kind, afterStep] of trials) {
      const rank = pick(0, 1);
      const r = await faultTrial(kind, join(dir, kind), reference, afterStep, rank, pick(0, 300));
      const where = `${kind} after step ${afterStep} on ${r.victim} (seed ${seed})`;
      assert.ok(matchesReference(r), `${where}: final weights differ from the uninterrupted run by ${r.diff.worst} (max |w| ${r.diff.pmax})\n${r.output}`);
      const summary = JSON.parse(readFileSync(join(dir, kind, 'summary.json'), 'utf8')) as { steps: number; restarts: number; train_loss: { step: number }[]; world_size: number };
      assert.equal(summary.steps, TOTAL_STEPS, where);
      const steps = summary.train_loss.map((s) => s.step);
      if (kind === 'kill-coordinator') {
        // The restarted coordinator reports the steps it did: those after its checkpoint.
        assert.deepEqual(steps, Array.from({ length: steps.length }, (_, i) => TOTAL_STEPS - steps.length + i), where);
        assert.match(r.output, /unfinished \(its coordinator stopped\): continuing it from the newest valid checkpoint/, where);
        continue;
      }
      // Each step once, though the ones after the checkpoint were done twice.
      assert.deepEqual(steps, [...Array(TOTAL_STEPS).keys()], where);
      assert.equal(summary.restarts, 1, where);
      assert.match(r.output, /worker \d lost \(pid \d+\)/, where);
      assert.match(r.output, /rolled back to step \d/, where);
      if (kind === 'stop-worker') {
        assert.match(r.output, /no heartbeat for \d+ ms/, where);
        assert.ok(r.victimGone, `${where}: the stopped worker was not killed`);
      }
      if (kind === 'truncate-shard') {
        assert.match(r.output, /checkpoint-4 is corrupt .*truncated or replaced.*using the previous one/, where);
        assert.match(r.output, /rolled back to step 2/, where);
      }
      if (kind === 'lose-worker') {
        assert.match(r.output, /continuing with 1 of 2 workers: per-device batch 2 x accumulation 2 keeps the global batch of 4/, where);
        assert.equal(summary.world_size, 1, where);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with its restarts used up, kp-coord start fails promptly and leaves no worker behind', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-faults-giveup-'));
  try {
    const run = new CliProcess(['start', '--threads-per-worker', '1', ...faultRunSettings(join(dir, 'run')), '--set', 'max_restarts=0']);
    await run.waitFor(/step 1\/\d+ /);
    const pids = [...workerPids(run.output).values()];
    process.kill(pids[1]!, 'SIGSTOP'); // a stopped worker is the hard case: only SIGKILL ends it
    process.kill(pids[0]!, 'SIGKILL');
    const { code } = await run.exited;
    assert.equal(code, 1, run.output);
    assert.match(run.output, /restarts are used up|giving up after 0 restarts/);
    assert.deepEqual(await survivors(pids), [], 'worker processes left running');
    const record = JSON.parse(readFileSync(join(dir, 'run', 'run.json'), 'utf8')) as { status: string };
    assert.equal(record.status, 'failed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
