// bench/netns-faults: link-cut trials in network namespaces (test/helpers/netns-trial.ts), at least
// 10 per kind in the issue's measure: a worker's link cut, the coordinator's link cut, each at a
// random step (and victim), down for --outage-ms, mutual TLS between the namespaces. Prints one
// line per trial and, per kind: finished, weights equal to the uninterrupted run's, detection time
// (wall clock on a shared machine: read it as an order of magnitude). Needs root and iproute2.
//
//   npm run build && node dist/bench/netns-faults.js [--trials 10] [--seed 7] [--outage-ms 6000]
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { referenceRun, seededPicker, TOTAL_STEPS } from '../test/helpers/fault-trial.js';
import { netnsUnavailable } from '../test/helpers/netns.js';
import { linkCutTrial, type LinkCutKind } from '../test/helpers/netns-trial.js';
import { makeCa, makeTlsDir, opensslMissing } from '../test/helpers/tls-certs.js';

const { values } = parseArgs({ options: { trials: { type: 'string', default: '10' }, seed: { type: 'string', default: String(Date.now() % 100_000) }, 'outage-ms': { type: 'string', default: '6000' } } });
const trials = Number(values.trials);
const outageMs = Number(values['outage-ms']);
const why = netnsUnavailable() || opensslMissing;
if (why) {
  console.error(`bench/netns-faults: ${why}`);
  process.exit(2);
}
const pick = seededPicker(Number(values.seed));
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const dir = mkdtempSync(join(tmpdir(), 'kp-bench-netns-'));
console.log(`bench/netns-faults: ${trials} trials per kind; seed ${values.seed}; outage ${outageMs} ms; load average ${load()}`);
const rows: { kind: LinkCutKind; finished: boolean; identical: boolean; detect: number | null }[] = [];
try {
  makeCa(join(dir, 'ca'));
  const tlsDir = makeTlsDir(join(dir, 'ca'), join(dir, 'tls'));
  const reference = await referenceRun(join(dir, 'reference'));
  for (let i = 0; i < trials * 2; i++) {
    const kind: LinkCutKind = i % 2 === 0 ? 'cut-worker' : 'cut-coordinator';
    const afterStep = pick(1, TOTAL_STEPS - 1);
    const rank = pick(0, 1);
    const out = join(dir, `trial-${i}`);
    try {
      const r = await linkCutTrial(kind, out, reference, afterStep, rank, outageMs, tlsDir);
      rows.push({ kind, finished: r.finished, identical: r.identical, detect: r.detectSeconds });
      console.log(`${String(i + 1).padStart(3)} ${kind.padEnd(15)} after step ${afterStep} ${r.victim.padEnd(18)} detected ${r.detectSeconds.toFixed(1)} s  weights ${r.identical ? 'identical' : `differ by ${r.diff.worst}`}  registrations ${r.registrations.join('/')}`);
    } catch (e) {
      rows.push({ kind, finished: false, identical: false, detect: null });
      console.log(`${String(i + 1).padStart(3)} ${kind.padEnd(15)} after step ${afterStep}: FAILED ${(e as Error).message.split('\n')[0]}`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log('');
console.log('kind             trials  finished  weights equal  detection s (min / median / max)');
for (const kind of ['cut-worker', 'cut-coordinator'] as const) {
  const rs = rows.filter((r) => r.kind === kind);
  const d = rs.map((r) => r.detect).filter((x): x is number => x !== null).sort((a, b) => a - b);
  const stat = d.length ? `${d[0]!.toFixed(1)} / ${d[Math.floor(d.length / 2)]!.toFixed(1)} / ${d.at(-1)!.toFixed(1)}` : '-';
  console.log(`${kind.padEnd(16)} ${String(rs.length).padStart(6)}  ${String(rs.filter((r) => r.finished).length).padStart(8)}  ${String(rs.filter((r) => r.identical).length).padStart(13)}  ${stat}`);
}
console.log(`load average at end: ${load()}`);
if (rows.some((r) => !r.identical)) process.exitCode = 1;
