import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { referenceRun, seededPicker, TOTAL_STEPS } from '../../helpers/fault-trial.js';
import { linkCutTrial, type LinkCutKind } from '../../helpers/netns-trial.js';
import { netnsUnavailable } from '../../helpers/netns.js';
import { makeCa, makeTlsDir, opensslMissing } from '../../helpers/tls-certs.js';

// Multi-host faults without a cluster: the coordinator and each worker in their own network
// namespace (test/helpers/netns.ts), mutual TLS between them. One worker's link is cut mid-run and
// brought back; then the coordinator's. Each run must detect the loss by heartbeats, roll back and
// finish with the uninterrupted run's weights, bit for bit (same world, same order), and the cut
// worker must register again. Skips itself where namespaces cannot be made (not root); .ci/run runs
// as root. The step and victim are random; the seed is printed (KP_NETNS_SEED replays it).

const skip = netnsUnavailable() || opensslMissing;
const seed = Number(process.env.KP_NETNS_SEED ?? Date.now() % 100_000);
const pick = seededPicker(seed);

test(`link cuts in network namespaces: a worker's, then the coordinator's (seed ${seed})`, { skip, timeout: 900_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-netns-'));
  try {
    makeCa(join(dir, 'ca'));
    const tlsDir = makeTlsDir(join(dir, 'ca'), join(dir, 'tls'));
    const reference = await referenceRun(join(dir, 'reference'));
    for (const kind of ['cut-worker', 'cut-coordinator'] as LinkCutKind[]) {
      const afterStep = pick(1, TOTAL_STEPS - 1);
      const rank = pick(0, 1);
      // Down for 6 s: longer than the 4 s heartbeat timeout, so the loss must be detected.
      const r = await linkCutTrial(kind, join(dir, kind), reference, afterStep, rank, 6000, tlsDir);
      const where = `${kind} after step ${afterStep}, victim ${r.victim} (seed ${seed})`;
      console.log(`${where}: detected in ${r.detectSeconds.toFixed(1)} s; registrations ${r.registrations.join('/')}; told by: ${r.howTold.join(' | ')}`);
      assert.match(r.output, /no heartbeat for \d+ ms \(timeout 4000 ms\)/, `${where}: lost by heartbeat timeout`);
      assert.match(r.output, /rolled back to step \d/, where);
      assert.ok(r.identical, `${where}: final weights differ from the uninterrupted run by ${r.diff.worst} (max |w| ${r.diff.pmax})\n${r.output}`);
      const summary = JSON.parse(readFileSync(join(dir, kind, 'summary.json'), 'utf8')) as { steps: number; world_size: number };
      assert.equal(summary.steps, TOTAL_STEPS, where);
      assert.equal(summary.world_size, 2, `${where}: the cut side came back into the run`);
      if (kind === 'cut-worker') assert.ok(Math.max(...r.registrations) >= 2, `${where}: the cut worker registered again (${r.registrations.join('/')})`);
      else assert.ok(r.registrations.every((n) => n >= 2), `${where}: both workers registered again (${r.registrations.join('/')})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
