import { KpCoordError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { TrainPlan } from '../shared/plan/train-plan.js';
import { batchShapeFor } from './batch-shape.js';
import type { ControlServer, Member } from './control-server.js';
import { findResumePoint, type ResumePoint } from './resume-point.js';
import { RunHistory } from './run-history.js';
import type { RunEventListener } from './run-events.js';
import { driveGeneration, type RunSummary } from './step-driver.js';
import { WorkerFailedError, WorkerLostError } from './worker-lost-error.js';

// A run that survives its workers (TorchElastic's model, on ZeRO checkpoints): each generation
// gathers workers and drives the run from the last checkpoint; when a worker dies, stops
// answering heartbeats or fails a command, the generation is aborted on everyone, the run rolls
// back to the newest valid checkpoint, and a new generation starts with a replacement worker if
// one registers within the grace period, else with the survivors. The global batch is kept (the
// per-device batch and accumulation are re-cut), so the result is the uninterrupted run's.

export interface RecoveryOptions {
  /** Generations that may end with a lost worker before the run fails. */
  readonly maxRestarts: number;
  /** How long a new generation waits for a replacement before going on with the survivors. */
  readonly replacementGraceMs: number;
  /** Told about each lost worker (local mode kills a stopped one and starts another). */
  readonly onWorkerLost?: (member: Member) => void;
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
  // The first generation waits for every worker; later ones only for the grace period.
  let graceMs: number | null = null;
  for (;;) {
    server.open(basePlan.world);
    let members: readonly Member[];
    try {
      members = await server.gather(basePlan.world, graceMs);
    } catch (err) {
      // A worker lost before training resumed: nothing to roll back, gather again.
      if (!(err instanceof WorkerLostError)) throw err;
      if (err.member) o.onWorkerLost?.(err.member);
      emit({ type: 'note', text: `${err.message}; gathering workers again` });
      server.abort(err.message);
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
      return await driveGeneration(server, plan, history, log, emit);
    } catch (err) {
      if (!(err instanceof WorkerLostError || err instanceof WorkerFailedError)) throw err;
      const lost = err instanceof WorkerLostError ? err.member : null;
      if (lost) {
        emit({ type: 'worker_lost', rank: lost.rank, host: lost.host, pid: lost.pid, reason: err.message });
        o.onWorkerLost?.(lost);
      }
      server.abort(err.message);
      if (history.restarts >= o.maxRestarts) throw new KpCoordError(`giving up after ${o.maxRestarts} restarts (max_restarts): ${err.message}`, { cause: err });
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
