import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { KpCoordError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { TrainPlan } from '../shared/plan/train-plan.js';
import { writeBytesAtomically } from '../shared/weights/atomic-file.js';
import { ReportKind, type WorkerReport } from '../proto/gen/control/control.js';
import { EarlyStopping } from './early-stopping.js';
import { listCheckpoints, readVerifiedManifest, writeManifest } from '../shared/checkpoint/checkpoint-manifest.js';
import { rangesOf, type ShardFile } from '../shared/checkpoint/range-shard.js';
import { rm } from 'node:fs/promises';
import { numel } from '../shared/models/t5-params.js';
import { embeddingResize } from '../shared/data/cache-format.js';
import { openDataCache } from '../shared/data/data-cache.js';
import { modelFamily, resizedForData, resolveModelSpec } from '../shared/models/model-spec.js';
import { loraSettings } from '../worker/worker-model.js';
import type { ControlServer } from './control-server.js';
import type { RunEventListener } from './run-events.js';
import type { RunHistory } from './run-history.js';
import { predictWithGenerate, type GenerateSummary } from './predict-with-generate.js';

// Drives one round of a run: set its workers up (from the plan's checkpoint, or from the
// start), then step by step until total_steps, each step committed only when every rank reported
// it done; then the final model and summary.json. A lost worker rejects the barrier being waited
// on, and the caller (recovering-run.ts) decides how to continue.

export interface RunSummary {
  readonly run_id: string;
  readonly steps: number;
  readonly epochs: number;
  /** Workers of the round that finished the run (fewer than asked if it continued with survivors). */
  readonly world_size: number;
  readonly zero_stage: number;
  /** Rounds ended by a lost or failed worker (each rolled back to the last checkpoint). */
  readonly restarts: number;
  readonly train_loss: readonly StepRecord[];
  /** Peak resident memory each rank reported (bytes), by rank. */
  readonly worker_peak_rss_bytes: readonly number[];
  readonly samples_per_second: number;
  readonly tokens_per_second: number;
  readonly wall_seconds: number;
  readonly final_model: string;
  /** The plan's init seed: a LoRA run from a preset rebuilds its base weights from it (`kp-coord generate --model <final>`). */
  readonly seed: number;
  /** Each evaluation: token-mean loss over the eval split. */
  readonly eval_loss: readonly { readonly step: number; readonly epoch: number; readonly eval_loss: number }[];
  readonly best_eval_loss: number | null;
  readonly best_step: number | null;
  readonly stopped_early: boolean;
  /** Whether final/ holds the best evaluation's weights (load_best_model_at_end) or the last step's. */
  readonly final_weights: 'best' | 'last';
  /** predict_with_generate: the final model's decoding of the eval split, scored; null when off. */
  readonly generate: GenerateSummary | null;
}

export interface StepRecord {
  readonly step: number;
  readonly epoch: number;
  readonly loss: number;
  readonly lr: number;
  readonly grad_norm: number;
  /** Wall time of the step as the coordinator saw it (command out to last report in). */
  readonly seconds: number;
  /** The slowest rank's own time for the step (compute + collectives). */
  readonly worker_seconds: number;
  /** Data-plane bytes the busiest rank sent during the step. */
  readonly bytes_sent_per_worker: number;
}

export async function driveRound(server: ControlServer, plan: TrainPlan, history: RunHistory, log: Logger, emit: RunEventListener): Promise<RunSummary> {
  const members = server.seal(plan.world);
  for (const m of members) emit({ type: 'worker_joined', rank: m.rank, host: m.host, pid: m.pid, workerId: m.workerId });
  const planJson = JSON.stringify(plan);
  server.broadcast({ kind: { $case: 'setup', value: { peers: server.peers(), planJson } } });
  await server.barrier.wait(ReportKind.READY, 0);
  if (history.trainStarted === null) {
    emit({ type: 'started', world: plan.world, totalSteps: plan.total_steps, zeroStage: plan.zero_stage });
    history.trainStarted = performance.now();
  }
  log.info({ world: plan.world, steps: plan.total_steps, stage: plan.zero_stage, round: server.round }, 'training started');

  const trainStarted = history.trainStarted;
  const stopping = new EarlyStopping(plan.early_stopping_patience, plan.early_stopping_threshold);
  const evalAfter = new Set(plan.eval_after_steps);
  const saveAfter = new Set(plan.save_after_steps);
  const resumed = plan.resume ? await readVerifiedManifest(plan.resume.dir) : null;
  // Resuming replays the evaluations so far, so early stopping continues where it was.
  const evals: { step: number; epoch: number; eval_loss: number }[] = [...(resumed?.evals ?? [])];
  // A run that stopped early saved the stopping evaluation's checkpoint; one resumed from it
  // (after a fault in saveFinal, or a restarted coordinator) stops there again.
  let stoppedEarly = evals.map((e) => stopping.evaluate(e.eval_loss, e.step)).at(-1)?.shouldStop ?? false;
  let best: { loss: number; step: number; dir: string | null } | null = resumed?.best ? { loss: resumed.best.eval_loss, step: resumed.best.step, dir: resumed.best.dir } : null;
  let stepsDone = plan.resume?.steps_done ?? 0;
  if (plan.resume) log.info({ dir: plan.resume.dir, stepsDone, stoppedEarly }, 'resumed from checkpoint');
  for (let step = stepsDone; step < plan.total_steps && !stoppedEarly; step++) {
    const epoch = Math.floor(step / plan.steps_per_epoch);
    const t0 = performance.now();
    server.broadcast({ kind: { $case: 'step', value: { step, epoch, stepInEpoch: step % plan.steps_per_epoch } } });
    const reports = await server.barrier.wait(ReportKind.STEP_DONE, step);
    const lossSum = reports.reduce((s, r) => s + r.lossSum, 0);
    const stepTokens = reports.reduce((s, r) => s + r.tokenCount, 0);
    const stepSamples = reports.reduce((s, r) => s + r.samples, 0);
    const loss = lossSum / stepTokens;
    const { gradNorm, lr } = reports[0]!;
    if (!Number.isFinite(loss)) throw new KpCoordError(`step ${step}: loss is ${loss}`);
    for (const r of reports) history.notePeakRss(r.rank, r.rssBytes);
    history.addStep({
      step, epoch, loss, lr, grad_norm: gradNorm,
      seconds: (performance.now() - t0) / 1000,
      worker_seconds: Math.max(...reports.map((r) => r.seconds)),
      bytes_sent_per_worker: Math.max(...reports.map((r) => r.bytesSent)),
    }, stepSamples, stepTokens);
    const elapsed = (performance.now() - trainStarted) / 1000;
    emit({
      type: 'step', step, totalSteps: plan.total_steps, epoch, loss, lr, gradNorm,
      samplesPerSecond: stepSamples / ((performance.now() - t0) / 1000),
      tokensPerSecond: history.tokens / elapsed,
      etaSeconds: (elapsed / history.trainLoss.length) * (plan.total_steps - step - 1),
    });
    stepsDone = step + 1;
    if (saveAfter.has(step + 1) && !evalAfter.has(step + 1)) best = await saveCheckpoint(server, plan, step, epoch, evals, best, log, emit);

    if (evalAfter.has(step + 1)) {
      // The step's parameters, evaluated on the whole eval split (each rank its share).
      server.broadcast({ kind: { $case: 'evaluate', value: { step } } });
      const evalReports = await server.barrier.wait(ReportKind.EVAL_DONE, step);
      const evalLoss = evalReports.reduce((a, r) => a + r.lossSum, 0) / evalReports.reduce((a, r) => a + r.tokenCount, 0);
      const outcome = stopping.evaluate(evalLoss, step);
      evals.push({ step, epoch, eval_loss: evalLoss });
      if (outcome.isBest) {
        best = { loss: evalLoss, step, dir: null };
        if (plan.load_best_model_at_end) server.broadcast({ kind: { $case: 'keepBest', value: { step } } });
      }
      emit({ type: 'eval', step, epoch, evalLoss, bestEvalLoss: outcome.best, bestStep: outcome.bestStep, isBest: outcome.isBest, patienceLeft: outcome.patienceLeft });
      log.info({ step, evalLoss, best: outcome.best, patienceLeft: outcome.patienceLeft }, 'evaluated');
      if (saveAfter.has(step + 1)) best = await saveCheckpoint(server, plan, step, epoch, evals, best, log, emit);
      if (outcome.shouldStop) {
        stoppedEarly = true;
        emit({ type: 'early_stop', step, bestEvalLoss: outcome.best, bestStep: outcome.bestStep });
        log.info({ step, best: outcome.best, bestStep: outcome.bestStep }, 'early stop');
        break;
      }
    }
  }
  const trainSeconds = (performance.now() - trainStarted) / 1000;

  const finalDir = join(plan.output_dir, 'final');
  await mkdir(finalDir, { recursive: true });
  const useBest = plan.load_best_model_at_end && best !== null;
  server.broadcast({ kind: { $case: 'saveFinal', value: { dir: finalDir, useBest } } });
  await server.barrier.wait(ReportKind.SAVED, plan.total_steps);
  emit({ type: 'saved', dir: finalDir });
  const generate = plan.generate ? await predictWithGenerate(server, plan, finalDir, stepsDone, log, emit) : null;

  const summary: RunSummary = {
    run_id: plan.run_id,
    steps: stepsDone,
    epochs: stepsDone / plan.steps_per_epoch,
    world_size: plan.world,
    zero_stage: plan.zero_stage,
    train_loss: history.trainLoss,
    worker_peak_rss_bytes: history.workerPeakRss,
    samples_per_second: history.samples / trainSeconds,
    tokens_per_second: history.tokens / trainSeconds,
    wall_seconds: (performance.now() - history.started) / 1000,
    restarts: history.restarts,
    final_model: finalDir,
    seed: plan.seed,
    eval_loss: evals,
    best_eval_loss: best?.loss ?? null,
    best_step: best?.step ?? null,
    stopped_early: stoppedEarly,
    final_weights: useBest ? 'best' : 'last',
    generate,
  };
  const summaryPath = join(plan.output_dir, 'summary.json');
  await writeBytesAtomically(summaryPath, `${JSON.stringify(summary, null, 2)}\n`);
  server.shutdown('finished');
  emit({ type: 'finished', summaryPath });
  return summary;
}

/**
 * Every rank writes its range; then the manifest, last, makes the checkpoint visible. Older
 * checkpoints beyond save_total_limit are deleted, never the best one. Returns `best` with the
 * checkpoint directory filled in when this step is the best evaluation.
 */
async function saveCheckpoint(
  server: ControlServer,
  plan: TrainPlan,
  step: number,
  epoch: number,
  evals: readonly { step: number; epoch: number; eval_loss: number }[],
  best: { loss: number; step: number; dir: string | null } | null,
  log: Logger,
  emit: RunEventListener,
): Promise<{ loss: number; step: number; dir: string | null } | null> {
  const stepsDone = step + 1;
  const dir = join(plan.output_dir, `checkpoint-${stepsDone}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  server.broadcast({ kind: { $case: 'saveCheckpoint', value: { dir, stepsDone } } });
  const reports = await server.barrier.wait(ReportKind.CHECKPOINT_SAVED, stepsDone);
  const files = reports.map((r) => shardFileOf(r)).sort((a, b) => a.start - b.start);
  const newBest = best && best.step === step ? { ...best, dir } : best;
  await writeManifest(dir, {
    version: 1,
    run_id: plan.run_id,
    steps_done: stepsDone,
    epoch,
    world: plan.world,
    global_batch_size: plan.per_device_train_batch_size * plan.gradient_accumulation_steps * plan.world,
    zero_stage: plan.zero_stage,
    // The trainable parameters (LoRA: the adapters), what the files hold.
    param_count: trainedModel(plan).paramCount,
    padded_size: files.reduce((n, f) => Math.max(n, f.end), 0),
    model: plan.model,
    lora: plan.lora,
    vocab_size: trainedModel(plan).vocab,
    seed: plan.seed,
    data_seed: plan.data_seed,
    files,
    evals: [...evals],
    best: newBest?.dir ? { step: newBest.step, eval_loss: newBest.loss, dir: newBest.dir } : null,
    created: new Date().toISOString(),
  });
  emit({ type: 'checkpoint', step, dir });
  log.info({ dir, files: files.length }, 'checkpoint saved');
  if (plan.save_total_limit !== null) {
    const checkpoints = listCheckpoints(plan.output_dir);
    const keep = new Set(checkpoints.slice(0, plan.save_total_limit).map((c) => c.dir));
    if (newBest?.dir) keep.add(newBest.dir);
    for (const c of checkpoints) {
      if (!keep.has(c.dir)) {
        await rm(c.dir, { recursive: true, force: true });
        log.info({ dir: c.dir }, 'deleted an old checkpoint (save_total_limit)');
      }
    }
  }
  return newBest;
}

/** The reported file; one without `ranges` (a worker from before stage 3) holds [start, end). */
function shardFileOf(r: WorkerReport): ShardFile {
  const f = r.shardFile;
  if (!f) throw new KpCoordError(`worker rank ${r.rank} reported a saved checkpoint without its shard file`);
  const { ranges, ...rest } = f;
  return { ...rest, ranges: ranges.length > 0 ? ranges.map((x) => ({ start: x.start, end: x.end })) : rangesOf(rest) };
}

const trainedModels = new WeakMap<TrainPlan, { readonly paramCount: number; readonly vocab: number }>();

/**
 * What the workers train, as WorkerModel lays it out: the trainable parameter count (LoRA: the
 * adapters) and the vocabulary (the model's own, or resized for the data's added tokens). Once per
 * plan: it opens the data cache.
 */
function trainedModel(plan: TrainPlan): { readonly paramCount: number; readonly vocab: number } {
  let trained = trainedModels.get(plan);
  if (trained === undefined) {
    const lora = plan.lora ? loraSettings(plan.lora) : null;
    const { spec } = resizedForData(resolveModelSpec(plan.model), embeddingResize(openDataCache(plan.data_cache).manifest));
    trained = { paramCount: modelFamily({ ...spec, lora }).paramSpecs().reduce((n, p) => n + numel(p.shape), 0), vocab: Number(spec.configRaw.vocab_size) };
    trainedModels.set(plan, trained);
  }
  return trained;
}
