import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { faultRunSettings, faultTrial, matchesReference, referenceRun, seededPicker, TOTAL_STEPS, type FaultKind } from '../../helpers/fault-trial.js';
import { CliProcess, weightDiff } from '../../helpers/kp-coord-process.js';

// The fault trials of faults.test.ts at ZeRO stage 3 (units dropped after each use, so nearly every
// collective of a step is an all-gather of a unit: a peer that dies mid-step leaves the survivor
// waiting in a gather or, less often, in a unit's reduce-scatter). The run must end with the
// uninterrupted stage-3 run's weights under the same rule (bit for bit unless the world shrank).
// The survivor's failed collective is printed from its log; kill-worker at the step line with no
// delay lands in the next step's first gather unless the step had already passed it.

const seed = Number(process.env.KP_FAULT_SEED ?? Date.now() % 100_000);
const pick = seededPicker(seed);
// Persistence from HF's auto (10 x d_model): DeepSpeed's default 1e5 would keep every t5-tiny unit whole.
const STAGE3 = ['zero_optimization.stage=3', 'zero_optimization.stage3_max_reuse_distance=0', 'zero_optimization.stage3_param_persistence_threshold=auto', 'gradient_checkpointing=true', 'zero_optimization.overlap_comm=false'];

/** What the surviving workers were doing when their command failed or the round ended under it, from their logs. */
function failedCollectives(outputDir: string): string[] {
  const logs = join(outputDir, 'logs');
  if (!existsSync(logs)) return [];
  return readdirSync(logs).flatMap((f) =>
    readFileSync(join(logs, f), 'utf8').split('\n').filter((l) => l.includes('command failed') || l.includes('command interrupted')).map((l) => String((JSON.parse(l) as { err?: string }).err ?? '')),
  );
}

test(`faults at ZeRO stage 3: kill -9 mid-gather, SIGSTOP, truncated chunk file, coordinator killed, worker lost for good (seed ${seed})`, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-faults3-'));
  try {
    const reference = await referenceRun(join(dir, 'reference'), STAGE3);
    const trials: [FaultKind, number, number][] = [
      ['kill-worker', pick(1, TOTAL_STEPS - 1), 0],
      ['stop-worker', pick(1, TOTAL_STEPS - 1), pick(0, 300)],
      ['truncate-shard', 5, pick(0, 300)],
      ['kill-coordinator', pick(1, TOTAL_STEPS - 1), pick(0, 300)],
      ['lose-worker', pick(1, TOTAL_STEPS - 1), pick(0, 300)],
    ];
    let gathersHit = 0;
    for (const [kind, afterStep, delay] of trials) {
      const out = join(dir, kind);
      const r = await faultTrial(kind, out, reference, afterStep, pick(0, 1), delay, STAGE3);
      const where = `stage 3 ${kind} after step ${afterStep} (+${delay} ms) on ${r.victim} (seed ${seed})`;
      const failed = failedCollectives(out);
      console.log(`${where}: survivor failed in ${failed.length ? failed.join(' | ') : '(no failed command logged)'}; detect ${r.detectSeconds?.toFixed(1) ?? '-'} s, recover ${r.recoverySeconds.toFixed(1)} s`);
      if (failed.some((f) => /all-gather "step-\d+\/params\//u.test(f))) gathersHit++;
      assert.ok(matchesReference(r), `${where}: final weights differ from the uninterrupted run by ${r.diff.worst} (max |w| ${r.diff.pmax})\n${r.output}`);
      const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { steps: number; zero_stage: number };
      assert.equal(summary.steps, TOTAL_STEPS, where);
      assert.equal(summary.zero_stage, 3, where);
      if (kind !== 'kill-coordinator') assert.match(r.output, /rolled back to step \d/, where);
      if (kind === 'truncate-shard') assert.match(r.output, /checkpoint-4 is corrupt .*truncated or replaced.*using the previous one/, where);
    }
    console.log(`${gathersHit} of ${trials.length} timed trials caught a survivor inside a unit's all-gather`);

    // Deterministic: rank 1 dies inside its all-gather of the unit trace position 0 needs (the
    // shared embedding) in step 3 (shared/failpoint.ts); rank 0 is left waiting in that gather. The replacement worker rolls back to checkpoint 2 and the run ends
    // with the uninterrupted weights, bit for bit.
    const out = join(dir, 'kill-in-gather');
    const armed = join(dir, 'failpoint');
    writeFileSync(armed, 'rank 1 gathering step-3/params/0/0/');
    const run = new CliProcess(['start', '--threads-per-worker', '1', ...faultRunSettings(out, 30_000, STAGE3)], { ...process.env, KPCOORD_FAILPOINT_FILE: armed });
    const output = await run.succeeded();
    assert.ok(!existsSync(armed), 'the failpoint did not fire');
    assert.match(output, /worker 1 lost \(pid \d+\)/);
    assert.match(output, /rolled back to step 2/);
    const failed = failedCollectives(out);
    console.log(`failpoint in rank 1's gather: rank 0 failed in ${failed.join(' | ')}`);
    assert.ok(failed.some((f) => /all-gather "step-3\/params\/0\/0\//u.test(f)), `rank 0 was not waiting in that gather: ${failed.join(' | ')}`);
    const diff = await weightDiff(reference, join(out, 'final'));
    assert.ok(diff.identical, `kill in a gather: final weights differ from the uninterrupted run by ${diff.worst}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
