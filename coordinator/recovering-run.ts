import { KpCoordError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { TrainPlan } from '../shared/plan/train-plan.js';
import { batchShapeFor } from './batch-shape.js';
import type { ControlServer, Member } from './control-server.js';
import { findResumePoint, type ResumePoint } from './resume-point.js';
import { RunHistory } from './run-history.js';
import type { RunEventListener } from './run-events.js';
import { driveRound, type RunSummary } from './step-driver.js';
import { WorkerFailedError, WorkerLostError } from './worker-lost-error.js';

// A run that survives its workers (TorchElastic's model, on ZeRO checkpoints): each round
// gathers workers and drives the run from the last checkpoint; when a worker dies, stops
// answering heartbeats or fails a command, the round is aborted on everyone, the run rolls
// back to the newest valid checkpoint, and a new round starts with a replacement worker if
// one registers within the grace period, else with the survivors. The global batch is kept (the
// per-device batch and accumulation are re-cut), so the result is the uninterrupted run's.

export interface RecoveryOptions {
  /** Rounds that may end with a lost worker before the run fails. */
  readonly maxRestarts: number;
  /** How long a new round waits for a replacement before going on with the survivors. */
  readonly replacementGraceMs: number;
  /** Told about each lost worker (local mode kills a stopped one and starts another). */
  readonly onWorkerLost?: (member: Member) => void;
  /** The run is being stopped from outside: a round that ends now is not replaced. */
  readonly signal?: AbortSignal;
}

export async function runWithRecovery(
  server: ControlServer,
  basePlan: TrainPlan,
  firstResume: ResumePoint | null,
  o: RecoveryOptions,
  log: Logger,
  emit: RunEventListener,
): Promise<RunSummary> {
  const history = new RunHistory();
  const globalBatch = basePlan.per_device_train_batch_size * basePlan.gradient_accumulation_steps * basePlan.world;
  let resume = firstResume;
  // The first round waits for every worker; later ones only for the grace period.
  let graceMs: number | null = null;
  for (;;) {
    server.open(basePlan.world);
    let members: readonly Member[];
    try {
      members = await server.gather(basePlan.world, graceMs);
    } catch (err) {
      // A worker lost before training resumed: nothing to roll back; gather again (it counts).
      if (!(err instanceof WorkerLostError)) throw err;
      await endRound(server, history, o, err, emit);
      continue;
    }
    const shape = batchShapeFor(members.length, globalBatch, basePlan.per_device_train_batch_size);
    if (shape.world < basePlan.world) {
      emit({ type: 'note', text: `continuing with ${shape.world} of ${basePlan.world} workers: per-device batch ${shape.perDevice} x accumulation ${shape.gradAccum} keeps the global batch of ${globalBatch}` });
    }
    const plan: TrainPlan = {
      ...basePlan,
      world: shape.world,
      per_device_train_batch_size: shape.perDevice,
      gradient_accumulation_steps: shape.gradAccum,
      resume: resume
        ? { dir: resume.dir, steps_done: resume.manifest.steps_done, optimizer_step: resume.manifest.steps_done, files: resume.manifest.files, best_dir: resume.manifest.best?.dir ?? null }
        : null,
    };
    try {
      return await driveRound(server, plan, history, log, emit);
    } catch (err) {
      if (!(err instanceof WorkerLostError || err instanceof WorkerFailedError)) throw err;
      if (err instanceof WorkerFailedError && err.fatal) {
        // Deterministic: every restart would fail the same way and use up max_restarts for nothing.
        server.shutdown(`run failed: ${err.message}`);
        throw new KpCoordError(`${err.message} (not restarting: the same inputs would fail again)`, { cause: err });
      }
      await endRound(server, history, o, err, emit);
      // The newest valid checkpoint in output_dir, or the one this run started from if newer.
      const latest = await findResumePoint('latest', basePlan.output_dir, log, emit);
      resume = (latest?.manifest.steps_done ?? -1) >= (firstResume?.manifest.steps_done ?? -1) ? latest : firstResume;
      const toStep = resume?.manifest.steps_done ?? 0;
      history.rollBackTo(toStep);
      log.warn({ toStep, reason: err.message, restarts: history.restarts }, 'rolling back to the last checkpoint');
      emit({ type: 'rolled_back', toStep, reason: err.message });
      graceMs = o.replacementGraceMs;
    }
  }
}

/**
 * A round failed: name the lost workers (a survivor's FAILED report can arrive before the dead
 * worker's stream closes, so wait a moment for the loss), count the restart, and either abort the
 * round on everyone (they register again) or, with the restarts used up, shut them down and fail.
 */
async function endRound(server: ControlServer, history: RunHistory, o: RecoveryOptions, err: WorkerLostError | WorkerFailedError, emit: RunEventListener): Promise<void> {
  if (o.signal?.aborted) throw new KpCoordError(`the run was stopped: ${String(o.signal.reason)}`, { cause: err });
  let lost = err instanceof WorkerLostError ? err : null;
  if (!lost) {
    const seen = await Promise.race([server.lost.catch((e: unknown) => e), new Promise((r) => setTimeout(r, LOSS_SETTLE_MS))]);
    if (seen instanceof WorkerLostError) lost = seen;
  }
  for (const m of lost?.members ?? []) {
    emit({ type: 'worker_lost', rank: m.rank, host: m.host, pid: m.pid, reason: lost!.message });
    o.onWorkerLost?.(m);
  }
  history.restarts++;
  if (history.restarts > o.maxRestarts) {
    server.shutdown(`run failed: ${err.message}`);
    throw new KpCoordError(`giving up after ${o.maxRestarts} restarts (max_restarts): ${err.message}`, { cause: err });
  }
  server.abort(err.message);
}

/** How long a FAILED report waits for the loss that may have caused it. */
const LOSS_SETTLE_MS = 1000;
