import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ResolvedRunConfig } from '../shared/config/resolve-run-config.js';
import { planSteps } from '../shared/config/step-plan.js';
import { sha256File } from '../shared/checkpoint/range-shard.js';
import { cacheLayout } from '../shared/data/cache-format.js';
import { openDataCache } from '../shared/data/data-cache.js';
import { resolveRules } from '../shared/data/data-rules.js';
import { prepareData } from '../shared/data/prepare.js';
import { KpCoordError } from '../shared/errors.js';
import type { TransportSecurity } from '../shared/tls/transport-security.js';
import type { Logger } from '../shared/log.js';
import { TrainPlanSchema, type TrainPlan } from '../shared/plan/train-plan.js';
import { loadTokenizer } from '../shared/tokenizer/load-tokenizer.js';
import { ControlServer, type Member } from './control-server.js';
import { runWithRecovery } from './recovering-run.js';
import { findResumePoint } from './resume-point.js';
import { readRunRecord, writeRunRecord } from './run-record.js';
import type { RunEventListener } from './run-events.js';
import type { RunSummary } from './step-driver.js';

// A coordinator's whole run: resolve the data cache (preparing raw files once), plan the steps,
// serve the control plane, and drive the run through lost workers (recovering-run.ts).

export interface CoordinatorOptions {
  /** host:port to listen on (port 0 picks one). */
  readonly listen: string;
  readonly token: string;
  /** The control port's transport security (default plaintext: tests and local runs on loopback). */
  readonly security?: TransportSecurity;
  readonly log: Logger;
  readonly onEvent: RunEventListener;
  /** Local mode: stop a lost worker's process if it still runs (so a replacement can start). */
  readonly onWorkerLost?: (member: Member) => void;
  /**
   * Refuse to start over in an output directory whose run failed, unless resume_from_checkpoint
   * says what to do: a cluster restarts a coordinator that exited with an error, and that restart
   * must not begin a new run over the failed one's checkpoints.
   */
  readonly refuseAfterFailedRun?: boolean;
  /** Stops the run from outside (local mode, when its workers cannot be restarted any more). */
  readonly signal?: AbortSignal;
}

export async function runCoordinator(rc: ResolvedRunConfig, o: CoordinatorOptions): Promise<RunSummary> {
  const c = rc.config;
  const outputDir = resolve(c.output_dir);
  // A coordinator restarted on an unfinished run (it crashed, or its pod was rescheduled)
  // continues it: same run id, from the newest valid checkpoint.
  const record = readRunRecord(outputDir, c.run_name ?? null);
  const unfinished = record?.status === 'running' ? record : null;
  if (o.refuseAfterFailedRun && record?.status === 'failed' && c.resume_from_checkpoint == null) {
    throw new KpCoordError(
      `${join(outputDir, 'run.json')}: run ${record.run_id} failed here (${record.updated}); not starting over on its checkpoints. ` +
        'Set resume_from_checkpoint (true/latest continues it, false starts afresh) or use another output_dir',
    );
  }
  const runId = unfinished?.run_id ?? c.run_name ?? `run-${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}`;
  const log = o.log.child({ run: runId });
  for (const i of rc.ignored) log.info(i, 'config key not acted on');
  if (rc.ignored.length > 0) o.onEvent({ type: 'note', text: `config keys accepted but not acted on: ${rc.ignored.map((i) => i.key).join(', ')}` });

  // Listen first: probes see NOT_SERVING (not "unreachable") while the data cache and plan are
  // prepared, and workers that register early are told to retry.
  const server = new ControlServer({ token: o.token, runId, log, heartbeatIntervalMs: c.heartbeat_interval_ms, heartbeatTimeoutMs: c.heartbeat_timeout_ms, ...(o.security ? { security: o.security } : {}) });
  const port = await server.listen(o.listen);
  o.onEvent({ type: 'listening', port });
  // Closing the server ends the round: whatever the driver awaits rejects, and nothing restarts.
  const stop = () => void server.close();
  o.signal?.addEventListener('abort', stop, { once: true });
  await writeRunRecord(outputDir, { run_id: runId, status: 'running', pid: process.pid, updated: new Date().toISOString() });
  try {
    const resumeSpec = c.resume_from_checkpoint ?? (unfinished ? 'latest' : null);
    if (unfinished && c.resume_from_checkpoint == null) {
      o.onEvent({ type: 'note', text: `${outputDir} holds run ${runId}, unfinished (its coordinator stopped): continuing it from the newest valid checkpoint` });
    }
    const summary = await planAndDrive(rc, o, server, runId, outputDir, resumeSpec, log);
    await writeRunRecord(outputDir, { run_id: runId, status: 'finished', pid: process.pid, updated: new Date().toISOString() });
    return summary;
  } catch (err) {
    await writeRunRecord(outputDir, { run_id: runId, status: 'failed', pid: process.pid, updated: new Date().toISOString() });
    throw err;
  } finally {
    o.signal?.removeEventListener('abort', stop);
    await server.close();
  }
}

async function planAndDrive(
  rc: ResolvedRunConfig,
  o: CoordinatorOptions,
  server: ControlServer,
  runId: string,
  outputDir: string,
  resumeSpec: string | boolean | null,
  log: Logger,
): Promise<RunSummary> {
  const c = rc.config;
  const resume = await findResumePoint(resumeSpec, outputDir, log, o.onEvent);
  const dataCache = await ensureDataCache(rc, outputDir, log);
  const cache = openDataCache(dataCache, { modelType: rc.modelType });
  const steps = planSteps(rc, cache.train.size);
  if (c.predict_with_generate && cache.eval === undefined) throw new KpCoordError('predict_with_generate needs an eval split in the data cache (eval_file, or an eval share when preparing)');
  const evalAfter = evalSchedule(c.eval_strategy, steps.evalSteps, steps.stepsPerEpoch, steps.totalSteps, cache.eval !== undefined);
  // The plan of a round with every worker and no checkpoint; runWithRecovery fills in the
  // world, batch split and checkpoint of each round.
  const plan: TrainPlan = TrainPlanSchema.parse({
    version: 1,
    run_id: runId,
    model: rc.model.kind === 'preset' ? `preset:${rc.model.name}` : rc.model.path,
    dropout_rate: c.dropout_rate ?? null,
    data_cache: dataCache,
    lora: rc.lora,
    causal: rc.causal,
    seed: c.seed,
    data_seed: c.data_seed ?? c.seed,
    world: rc.worldSize,
    zero_stage: c.zero_optimization.stage,
    stage3: {
      prefetch_bucket_size: c.zero_optimization.prefetch_bucket_size,
      param_persistence_threshold: c.zero_optimization.param_persistence_threshold,
      max_live_parameters: c.zero_optimization.max_live_parameters,
      max_reuse_distance: c.zero_optimization.max_reuse_distance,
    },
    optimizer_threads: c.optimizer_threads,
    gradient_checkpointing: c.gradient_checkpointing,
    overlap_comm: c.zero_optimization.overlap_comm,
    reduce_bucket_size: c.zero_optimization.reduce_bucket_size,
    per_device_train_batch_size: c.per_device_train_batch_size,
    gradient_accumulation_steps: c.gradient_accumulation_steps,
    group_by_length: c.group_by_length,
    dataloader_drop_last: c.dataloader_drop_last,
    steps_per_epoch: steps.stepsPerEpoch,
    total_steps: steps.totalSteps,
    max_grad_norm: c.max_grad_norm,
    adamw: { adam_beta1: c.adam_beta1, adam_beta2: c.adam_beta2, adam_epsilon: c.adam_epsilon, weight_decay: c.weight_decay },
    schedule: { learning_rate: c.learning_rate, lr_scheduler_type: c.lr_scheduler_type, warmup_ratio: c.warmup_ratio, warmup_steps: c.warmup_steps },
    output_dir: outputDir,
    eval_after_steps: evalAfter,
    per_device_eval_batch_size: c.per_device_eval_batch_size,
    early_stopping_patience: c.early_stopping_patience ?? null,
    early_stopping_threshold: c.early_stopping_threshold,
    load_best_model_at_end: c.load_best_model_at_end,
    save_after_steps: saveSchedule(c.save_strategy, steps.saveSteps, steps.stepsPerEpoch, steps.totalSteps, evalAfter),
    save_total_limit: c.save_total_limit ?? null,
    generate: c.predict_with_generate
      ? { max_new_tokens: c.generation_max_length ?? 64, num_beams: c.generation_num_beams ?? 1, no_repeat_ngram_size: c.generation_no_repeat_ngram_size }
      : null,
    resume: null,
  });
  if (resume) {
    const m = resume.manifest;
    o.onEvent({ type: 'note', text: `resuming from ${resume.dir} (${m.steps_done} steps done, written by ${m.world} workers)` });
    if (m.world !== plan.world) log.info({ from: m.world, to: plan.world }, 'resuming with another world size: ranges re-sliced');
    const want = { model: plan.model, seed: plan.seed, data_seed: plan.data_seed, global_batch_size: rc.globalBatchSize };
    const had = { model: m.model, seed: m.seed, data_seed: m.data_seed, global_batch_size: m.global_batch_size };
    if (JSON.stringify(want) !== JSON.stringify(had)) throw new KpCoordError(`${resume.dir}: written for ${JSON.stringify(had)}, this run is ${JSON.stringify(want)} (keep the global batch: per_device_train_batch_size x gradient_accumulation_steps x workers)`);
  }
  log.info({ world: plan.world, stage: plan.zero_stage, steps: plan.total_steps, perEpoch: plan.steps_per_epoch, train: cache.train.size }, 'run planned');

  try {
    return await runWithRecovery(server, plan, resume, {
      maxRestarts: c.max_restarts,
      replacementGraceMs: c.replacement_grace_ms,
      ...(o.onWorkerLost ? { onWorkerLost: o.onWorkerLost } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    }, log, o.onEvent);
  } catch (err) {
    o.onEvent({ type: 'failed', reason: (err as Error).message });
    server.shutdown(`run failed: ${(err as Error).message}`);
    throw err;
  }
}

/**
 * When to evaluate, as counts of steps done (HF: 'epoch' after each epoch's last step, 'steps'
 * every eval_steps steps). A cache without an eval split cannot be evaluated: say so.
 */
function evalSchedule(strategy: 'no' | 'steps' | 'epoch', evalSteps: number | undefined, perEpoch: number, total: number, hasEval: boolean): number[] {
  if (strategy === 'no') return [];
  if (!hasEval) throw new KpCoordError(`eval_strategy is ${strategy} but the data cache has no eval split`);
  const every = strategy === 'epoch' ? perEpoch : evalSteps;
  if (!every) throw new KpCoordError('eval_strategy steps needs eval_steps (or logging_steps)');
  return everySteps(every, total);
}

/** every, 2 x every, ... up to total (counts of steps done). */
function everySteps(every: number, total: number): number[] {
  const out: number[] = [];
  for (let done = every; done <= total; done += every) out.push(done);
  return out;
}

/** When to save, as counts of steps done (HF save_strategy; 'best' = after each new best evaluation). */
function saveSchedule(strategy: 'no' | 'steps' | 'epoch' | 'best', saveSteps: number, perEpoch: number, total: number, evalAfter: number[]): number[] {
  if (strategy === 'no') return [];
  if (strategy === 'best') return evalAfter;
  return everySteps(strategy === 'epoch' ? perEpoch : saveSteps, total);
}

/** A cache directory as configured, or raw files prepared once into OUTPUT_DIR/data-cache. */
async function ensureDataCache(rc: ResolvedRunConfig, outputDir: string, log: Logger): Promise<string> {
  if (rc.data.kind === 'cache') return rc.data.dir;
  const dir = join(outputDir, 'data-cache');
  const tokenizer = loadTokenizer(rc.config.tokenizer);
  const inputs = [rc.data.trainFile, ...(rc.data.evalFile ? [rc.data.evalFile] : [])];
  // Reuse a cache only if it was made from these exact files with this tokenizer.
  if (existsSync(join(dir, 'manifest.json'))) {
    const m = openDataCache(dir).manifest;
    const hashes = await Promise.all(inputs.map((f) => sha256File(f)));
    const same =
      m.tokenizer.fingerprint === tokenizer.fingerprint &&
      cacheLayout(m) === rc.sequence.layout &&
      (m.causal?.prefix_tokens ?? 'text') === rc.sequence.prefixTokens &&
      inputs.length === m.sources.length &&
      hashes.every((h) => m.sources.some((s) => s.sha256 === h));
    if (same) {
      log.info({ dir }, 'using the data cache prepared earlier from the same files');
      return dir;
    }
  }
  const report = await prepareData({
    inputs: [rc.data.trainFile],
    evalFiles: rc.data.evalFile ? [rc.data.evalFile] : [],
    tokenizer,
    tokenizerSpec: rc.config.tokenizer,
    layout: rc.sequence.layout,
    prefixTokens: rc.sequence.prefixTokens,
    rules: resolveRules(rc.data.rulesPreset),
    outDir: dir,
    overwrite: true,
    log,
  });
  log.info({ dir, kept: report.kept }, 'prepared the data cache');
  return dir;
}

