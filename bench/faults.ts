// bench/faults: the fault soak. N trials (default 20), each a real local run (t5-tiny, 2 worker
// processes) with one fault injected from outside at a random step: kill -9 of a random worker,
// SIGSTOP of one, a truncated newest checkpoint plus kill -9, the coordinator killed and
// restarted, or a worker lost for good (the survivor finishes). Every trial must finish and end
// with the uninterrupted run's weights. Prints one line per trial and a summary (detection and
// recovery times are wall-clock on a shared machine: read them as orders of magnitude).
//
//   npm run bench:faults [-- --trials 20 --kinds kill-worker,stop-worker --seed 7]
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FAULT_KINDS, faultTrial, matchesReference, referenceRun, seededPicker, TOTAL_STEPS, type FaultKind, type TrialResult } from '../test/helpers/fault-trial.js';

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '20' },
    kinds: { type: 'string', default: FAULT_KINDS.join(',') },
    seed: { type: 'string', default: String(Date.now() % 100_000) },
  },
});
const trials = Number(values.trials);
const kinds = values.kinds.split(',') as FaultKind[];
for (const k of kinds) if (!FAULT_KINDS.includes(k)) throw new Error(`--kinds: unknown fault ${k} (known: ${FAULT_KINDS.join(', ')})`);
const pick = seededPicker(Number(values.seed));

const dir = mkdtempSync(join(tmpdir(), 'kp-bench-faults-'));
console.log(`bench/faults: ${trials} trials of ${kinds.join(', ')}; seed ${values.seed}; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
const results: TrialResult[] = [];
let failures = 0;
try {
  const t0 = performance.now();
  const reference = await referenceRun(join(dir, 'reference'));
  console.log(`uninterrupted run: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  for (let i = 0; i < trials; i++) {
    const kind = kinds[i % kinds.length]!;
    // A truncated shard needs a checkpoint to truncate: inject after step 3 or later.
    const afterStep = pick(kind === 'truncate-shard' ? 3 : 1, TOTAL_STEPS - 1);
    const rank = pick(0, 1);
    try {
      const r = await faultTrial(kind, join(dir, `trial-${i}`), reference, afterStep, rank, pick(0, 300));
      results.push(r);
      const ok = matchesReference(r) && r.victimGone;
      if (!ok) failures++;
      console.log(
        `trial ${String(i + 1).padStart(2)} ${kind.padEnd(16)} after step ${afterStep} on ${r.victim.padEnd(24)} ` +
          `detect ${r.detectSeconds === null ? '   -  ' : `${r.detectSeconds.toFixed(2)} s`} recover ${r.recoverySeconds.toFixed(2)} s ` +
          `max |w - w_ref| ${r.diff.worst} ${ok ? 'ok' : 'MISMATCH'}`,
      );
    } catch (err) {
      failures++;
      console.log(`trial ${i + 1} ${kind} after step ${afterStep}: FAILED ${(err as Error).message.split('\n')[0]}`);
    }
    rmSync(join(dir, `trial-${i}`), { recursive: true, force: true });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
for (const kind of kinds) {
  const rs = results.filter((r) => r.kind === kind);
  if (rs.length === 0) continue;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const detect = rs.map((r) => r.detectSeconds).filter((x): x is number => x !== null);
  console.log(
    `${kind.padEnd(16)} ${rs.length} finished, ${rs.filter((r) => r.diff.identical).length} bit-identical; ` +
      `detection ${detect.length ? `${mean(detect).toFixed(2)} s` : '-'} mean, recovery ${mean(rs.map((r) => r.recoverySeconds)).toFixed(2)} s mean`,
  );
}
console.log(`${trials - failures}/${trials} trials finished with the uninterrupted run's weights; load average now ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
process.exitCode = failures === 0 ? 0 : 1;
