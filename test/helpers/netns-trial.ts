import { join } from 'node:path';
import { faultRunSettings, TOTAL_STEPS } from './fault-trial.js';
import { weightDiff, workerPids } from './kp-coord-process.js';
import { NetnsLab } from './netns.js';

// A link cut in a run spread over network namespaces (test/helpers/netns.ts): the coordinator and
// two workers each on their own "host", talking over the lab's bridge with mutual TLS (when a
// --tls-dir is given) or plaintext allowed off loopback. After step `afterStep` the victim's link
// goes down for `outageMs` and comes back. The run must detect the loss by heartbeats, roll back,
// and finish with the uninterrupted run's weights; a worker that comes back registers again.

export type LinkCutKind = 'cut-worker' | 'cut-coordinator';

export interface LinkCutResult {
  readonly kind: LinkCutKind;
  readonly afterStep: number;
  readonly victim: string;
  /** From the cut to the coordinator's "lost" line. */
  readonly detectSeconds: number;
  readonly finished: boolean;
  readonly identical: boolean;
  readonly diff: { worst: number; pmax: number };
  /** Registrations per worker over the run (2 or more: it came back and registered again). */
  readonly registrations: readonly number[];
  /** How a returning worker learned its round was over (refused by the coordinator, or its own heartbeat timeout). */
  readonly howTold: readonly string[];
  readonly output: string;
}

const TOKEN = 'netns-trial-token-0123456789abcdef';

export async function linkCutTrial(kind: LinkCutKind, outputDir: string, reference: string, afterStep: number, rank: number, outageMs: number, tlsDir: string | null): Promise<LinkCutResult> {
  const lab = new NetnsLab(['coord', 'w0', 'w1']);
  const env = { ...process.env, KPCOORD_TOKEN: TOKEN, KPCOORD_LOG_FORMAT: 'json' };
  const security = tlsDir ? ['--tls-dir', tlsDir] : ['--insecure-plaintext', '--allow-plaintext-non-loopback'];
  const coordAt = `${lab.node('coord').address}:50051`;
  try {
    const coordinator = lab.kpCoord('coord', ['coordinator', ...security, '--listen', coordAt, ...faultRunSettings(outputDir)], env);
    const workers = ['w0', 'w1'].map((name) => {
      const at = lab.node(name).address;
      return lab.kpCoord(name, ['worker', ...security, '--coordinator', coordAt, '--data-listen', at, '--advertise-host', at, '--threads', '1'], env);
    });
    await coordinator.waitFor(new RegExp(`step ${afterStep}/${TOTAL_STEPS} `), 180_000);
    // Ranks follow registration order; the coordinator names each rank's pid ("worker r joined
    // (host:pid)"), and `ip netns exec` execs node, so the pid is that of one of our processes.
    const pid = workerPids(coordinator.output).get(rank);
    const victimIndex = workers.findIndex((w) => w.child.pid === pid);
    if (kind === 'cut-worker' && victimIndex < 0) throw new Error(`rank ${rank} (pid ${pid}) is not one of this trial's workers:\n${coordinator.output}`);
    const victimNode = kind === 'cut-coordinator' ? 'coord' : (['w0', 'w1'] as const)[victimIndex]!;
    const from = coordinator.output.length;
    const t0 = performance.now();
    lab.cut(victimNode);
    const lost = await coordinator.waitFor(/ lost \(pid \d+\)/, 120_000, from);
    const detectSeconds = (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, Math.max(0, outageMs - (performance.now() - t0))));
    lab.restore(victimNode);
    await coordinator.waitFor(/rolled back to step/, 180_000, lost.index);
    const output = await coordinator.succeeded(300_000);
    for (const w of workers) await w.succeeded(120_000);
    const diff = await weightDiff(reference, join(outputDir, 'final'));
    const registrations = workers.map((w) => (w.output.match(/"msg":"registered"/g) ?? []).length);
    const howTold = workers.flatMap((w) => [...w.output.matchAll(/"reason":"(heartbeat refused[^"]*|the coordinator has not answered heartbeats[^"]*|aborted by the coordinator[^"]*|command stream failed[^"]*)"/g)].map((m) => m[1]!.replace(/\d+/g, 'N')));
    return {
      kind, afterStep, victim: kind === 'cut-coordinator' ? 'coordinator' : `worker ${rank} (${victimNode})`, detectSeconds, finished: true,
      identical: diff.identical, diff, registrations, howTold: [...new Set(howTold)], output: `${output}\n--- workers ---\n${workers.map((w) => w.output).join('\n')}`,
    };
  } finally {
    lab.destroy();
  }
}
