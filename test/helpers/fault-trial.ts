import { readdirSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { rngStream } from '../../shared/random.js';
import { CliProcess, freePort, processExists, weightDiff, workerPids } from './kp-coord-process.js';

// One fault, injected into a real run from outside (kill -9, SIGSTOP, a truncated shard, the
// coordinator killed), at a chosen step; the run must finish by itself, and its final weights are
// compared with an uninterrupted run of the same configuration. Shared by the fault tests (a few
// trials) and bench/faults.ts (the soak).

export type FaultKind =
  /** kill -9 a worker; local mode starts another, which replaces it. */
  | 'kill-worker'
  /** SIGSTOP a worker: heartbeats stop, the coordinator declares it lost, local mode kills and replaces it. */
  | 'stop-worker'
  /** Truncate the newest checkpoint's shard, then kill -9 a worker: the rollback must skip the bad checkpoint. */
  | 'truncate-shard'
  /** kill -9 the coordinator (standalone coordinator + workers); a new coordinator continues the run. */
  | 'kill-coordinator'
  /** kill -9 a worker of a standalone run with no replacement: the survivors finish with the same global batch. */
  | 'lose-worker';

export const FAULT_KINDS: readonly FaultKind[] = ['kill-worker', 'stop-worker', 'truncate-shard', 'kill-coordinator', 'lose-worker'];

/**
 * The run every trial uses: t5-tiny, 2 workers x 1 thread (so only summation order can differ),
 * 6 steps of 2 x 2 samples, a checkpoint every 2 steps.
 */
export const TOTAL_STEPS = 6;
export function faultRunSettings(outputDir: string, replacementGraceMs = 30_000, extra: readonly string[] = []): string[] {
  return [
    ...extra,
    'model=preset:t5-tiny', `max_steps=${TOTAL_STEPS}`, 'per_device_train_batch_size=2', 'gradient_accumulation_steps=1', 'eval_strategy=no', 'load_best_model_at_end=false', 'early_stopping_patience=null',
    'save_strategy=steps', 'save_steps=2', 'logging_steps=1', 'workers=2', `output_dir=${outputDir}`,
    // Fast detection for a stopped worker; the timeout leaves room for a loaded 2-core machine.
    'heartbeat_interval_ms=250', 'heartbeat_timeout_ms=4000', `replacement_grace_ms=${replacementGraceMs}`,
  ].flatMap((s) => ['--set', s]);
}

const TOKEN = 'fault-trial-token-0123456789abcdef';

export interface TrialResult {
  readonly kind: FaultKind;
  /** The fault was injected after this step was reported (1-based count of steps done). */
  readonly afterStep: number;
  readonly victim: string;
  /** From the fault to the coordinator's "lost" line (null for the coordinator itself). */
  readonly detectSeconds: number | null;
  /** From the fault to the first step done after the rollback (or by the restarted coordinator). */
  readonly recoverySeconds: number;
  readonly output: string;
  /** The victim process no longer exists when the run has finished (a stopped worker was killed). */
  readonly victimGone: boolean;
  readonly diff: { worst: number; pmax: number; identical: boolean };
}

/** `extra`: more `key=value` settings for the run (e.g. ZeRO stage 3), the same for the reference and the trial. */
export async function referenceRun(outputDir: string, extra: readonly string[] = []): Promise<string> {
  await new CliProcess(['start', '--threads-per-worker', '1', ...faultRunSettings(outputDir, 30_000, extra)]).succeeded();
  return join(outputDir, 'final');
}

/** Inject `kind` after step `afterStep` (1..TOTAL_STEPS-1) plus `delayMs`, hitting worker `rank`. */
export async function faultTrial(kind: FaultKind, outputDir: string, reference: string, afterStep: number, rank: number, delayMs: number, extra: readonly string[] = []): Promise<TrialResult> {
  const standalone = kind === 'kill-coordinator' || kind === 'lose-worker';
  const stepLine = new RegExp(`step ${afterStep}/${TOTAL_STEPS} `);
  let t0 = 0;
  let victim = '';
  let output = '';
  let victimGone = true;
  let detectSeconds: number | null = null;
  let recoverySeconds = 0;
  if (!standalone) {
    const run = new CliProcess(['start', '--threads-per-worker', '1', ...faultRunSettings(outputDir, 30_000, extra)]);
    await run.waitFor(stepLine);
    await sleep(delayMs);
    const pid = workerPids(run.output).get(rank);
    if (pid === undefined) throw new Error(`no pid for worker ${rank}:\n${run.output}`);
    if (kind === 'truncate-shard') {
      const newest = newestCheckpoint(outputDir);
      if (newest) {
        const shard = join(newest, readdirSync(newest).find((n) => n.endsWith('.safetensors'))!);
        truncateSync(shard, statSync(shard).size - 64);
      }
    }
    t0 = performance.now();
    process.kill(pid, kind === 'stop-worker' ? 'SIGSTOP' : 'SIGKILL');
    victim = `worker ${rank} (pid ${pid})`;
    try {
      const lostAt = await run.waitFor(/ lost \(pid \d+\)/);
      detectSeconds = (performance.now() - t0) / 1000;
      const rolledAt = await run.waitFor(/rolled back to step/, 120_000, lostAt.index);
      await run.waitFor(/step \d+\/\d+ /, 120_000, rolledAt.index);
      recoverySeconds = (performance.now() - t0) / 1000;
      output = await run.succeeded();
      victimGone = !processExists(pid);
    } finally {
      if (kind === 'stop-worker') killQuietly(pid); // only if the run did not (the test checks it did)
    }
  } else {
    const port = await freePort();
    const env = { ...process.env, KPCOORD_TOKEN: TOKEN };
    // Without a replacement the survivors go on after 1.5 s.
    const coordinatorArgs = ['coordinator', '--insecure-plaintext', '--listen', `127.0.0.1:${port}`, ...faultRunSettings(outputDir, kind === 'lose-worker' ? 1500 : 30_000, extra)];
    const workers = [0, 1].map(() => new CliProcess(['worker', '--insecure-plaintext', '--coordinator', `127.0.0.1:${port}`, '--threads', '1'], env));
    let coordinator = new CliProcess(coordinatorArgs, env);
    try {
      await coordinator.waitFor(stepLine);
      await sleep(delayMs);
      t0 = performance.now();
      if (kind === 'kill-coordinator') {
        coordinator.child.kill('SIGKILL');
        await coordinator.exited;
        victim = `coordinator (pid ${coordinator.child.pid})`;
        output = coordinator.output;
        coordinator = new CliProcess(coordinatorArgs, env);
        await coordinator.waitFor(/step \d+\/\d+ /);
        recoverySeconds = (performance.now() - t0) / 1000;
        output += `\n--- restarted coordinator ---\n${await coordinator.succeeded()}`;
        for (const w of workers) await w.succeeded(60_000);
      } else {
        const pid = workerPids(coordinator.output).get(rank);
        if (pid === undefined) throw new Error(`no pid for worker ${rank}:\n${coordinator.output}`);
        const lost = workers.find((w) => w.child.pid === pid);
        if (!lost) throw new Error(`worker pid ${pid} is not one of this trial's`);
        lost.child.kill('SIGKILL');
        victim = `worker ${rank} (pid ${pid})`;
        const lostAt = await coordinator.waitFor(/ lost \(pid \d+\)/);
        detectSeconds = (performance.now() - t0) / 1000;
        const rolledAt = await coordinator.waitFor(/rolled back to step/, 120_000, lostAt.index);
        await coordinator.waitFor(/step \d+\/\d+ /, 120_000, rolledAt.index);
        recoverySeconds = (performance.now() - t0) / 1000;
        output = await coordinator.succeeded();
        for (const w of workers) if (w !== lost) await w.succeeded(60_000);
      }
    } finally {
      for (const p of [coordinator, ...workers]) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    }
  }
  return { kind, afterStep, victim, detectSeconds, recoverySeconds, output, victimGone, diff: await weightDiff(reference, join(outputDir, 'final')) };
}

/**
 * Whether a trial's final weights are the uninterrupted run's. Same world: bit for bit (the same
 * samples, dropout masks and summation order are replayed). A world that shrank: within 1e-6 of
 * the largest |w|, because the global gradient norm's float64 sum is then split differently (two
 * ranks' partial sums vs one running sum), which can move the clip coefficient by ~1e-16 and flip
 * a float32 rounding; the ring's order also changes for N > 2. Measured so far: 0 in every trial.
 */
export function matchesReference(r: TrialResult): boolean {
  return r.kind === 'lose-worker' ? r.diff.worst <= 1e-6 * r.diff.pmax : r.diff.identical;
}

/**
 * Random whole numbers in [lo, hi] from `seed` (the counter-based generator of shared/random.ts),
 * so a trial's step and victim can be replayed from the seed a test or bench prints.
 */
export function seededPicker(seed: number): (lo: number, hi: number) => number {
  const stream = rngStream(seed);
  return (lo, hi) => lo + Math.floor(stream.uniform() * (hi - lo + 1));
}

function newestCheckpoint(outputDir: string): string | null {
  const steps = readdirSync(outputDir).map((n) => /^checkpoint-(\d+)$/.exec(n)).filter((m) => m !== null).map((m) => Number(m[1]));
  return steps.length === 0 ? null : join(outputDir, `checkpoint-${Math.max(...steps)}`);
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
