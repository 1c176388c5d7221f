import { hostname } from 'node:os';
import { status as grpcStatus } from '@grpc/grpc-js';
import { assembleModelBatch } from '../shared/data/assemble-batch.js';
import { cacheLayout, cacheVocabSize, embeddingResize } from '../shared/data/cache-format.js';
import { openDataCache, sampleLengths, type DataSplit } from '../shared/data/data-cache.js';
import type { ModelBatch } from '../shared/models/model-family.js';
import { DistributedSampler } from '../shared/data/sampler.js';
import { InputFileError, KpCoordError, WeightsMismatchError } from '../shared/errors.js';
import type { TransportSecurity } from '../shared/tls/transport-security.js';
import type { HealthStatus } from '../shared/health/health-status.js';
import type { Logger } from '../shared/log.js';
import { parseAdamWOptions } from '../shared/optim/adamw.js';
import { lrSchedule, parseLrScheduleOptions } from '../shared/optim/schedules.js';
import { parseTrainPlan, type TrainPlan } from '../shared/plan/train-plan.js';
import { flatShard, type FlatShard } from '../shared/sharding/flat-shard.js';
import { SHARDING_POLICIES } from '../shared/sharding/sharding-policy.js';
import { FlatLayout } from '../shared/weights/flat-layout.js';
import { ReportKind, type Command, type Peer } from '../proto/gen/control/control.js';
import { ThreadedBlockEngine } from './engine/engine-thread.js';
import { BlockEngine } from './engine/block-engine.js';
import { LocalBlockEngine, type TrainingEngine } from './engine/training-engine.js';
import { EngineOptionsSchema } from '../shared/onnx/session-options.js';
import { ControlClient, type WorkerSeat } from './control-client.js';
import { HeartbeatThread } from './heartbeat-thread.js';
import { generateShare } from './generate-share.js';
import { WorkerModel } from './worker-model.js';
import { resolveModelSpec } from '../shared/models/model-spec.js';
import { optimizerRange, ZeroTrainer, type StepCollective } from './zero-trainer.js';
import { readVerifiedManifest } from '../shared/checkpoint/checkpoint-manifest.js';
import { readRange, readRanges, writeRangeShard, type ShardFile } from '../shared/checkpoint/range-shard.js';
import { UnitSharding } from '../shared/sharding/unit-shard.js';
import { AdamWThreads, sharedFloat32 } from '../shared/optim/adamw-threads.js';
import { UnitGatherer, type UnitShards } from './param-gatherer.js';

// A worker process: register, wait for Setup (peers and plan known), build model, data, engine
// and collectives, then execute the coordinator's commands in order until Shutdown. When the
// coordinator ends the round (a peer was lost) or goes away, drop everything but the
// onnxruntime sessions and register again (with backoff while the coordinator is unreachable).

export interface WorkerCollective extends StepCollective {
  close(): Promise<void>;
}

/** This worker's data-plane server, listening before registration so peers can be told where. */
export interface DataPlane {
  readonly port: number;
  connect(peers: readonly Peer[], rank: number, world: number): Promise<WorkerCollective>;
  close(): Promise<void>;
}

export interface WorkerOptions {
  readonly coordinator: string;
  readonly token: string;
  /** mTLS or plaintext towards the coordinator (the data plane gets its own in startDataPlane). */
  readonly security?: TransportSecurity;
  /** Address peers use to reach this worker's data plane. */
  readonly advertiseHost: string;
  readonly startDataPlane: () => Promise<DataPlane>;
  readonly intraOpThreads: number;
  /** onnxruntime execution provider; 'cuda' needs the CUDA EP binaries (deploy/Dockerfile.cuda). */
  readonly executionProvider?: 'cpu' | 'cuda';
  readonly log: Logger;
  /** Probe state (`--health-port`): ready once registered and the engine is loaded. */
  readonly health?: HealthStatus;
}

interface Setup {
  readonly plan: TrainPlan;
  readonly eval: { readonly split: DataSplit; readonly sampler: DistributedSampler; readonly padId: number; readonly assemble: (split: DataSplit, indices: ArrayLike<number>) => ModelBatch } | null;
  /** Rank 0's copy of the best evaluation's parameters (load_best_model_at_end). */
  best: Float32Array | null;
  readonly model: WorkerModel;
  readonly layout: FlatLayout;
  readonly shard: FlatShard;
  readonly engine: TrainingEngine;
  readonly trainer: ZeroTrainer;
  readonly collective: WorkerCollective;
}

export async function runWorker(o: WorkerOptions): Promise<void> {
  const control = new ControlClient(o.coordinator, o.token, o.security);
  const engines = new EngineCache({ intraOpThreads: o.intraOpThreads, executionProvider: o.executionProvider ?? 'cpu' });
  try {
    // One round after another until the coordinator says the run is over.
    while ((await runRound(o, control, engines)) === 'aborted') o.log.info('round ended; registering again');
  } finally {
    o.health?.setReady(false);
    await engines.release();
    control.close();
  }
}

/**
 * One round: a fresh data plane (one world per data plane), register, run commands until
 * Shutdown ('shutdown') or until the round ends under us ('aborted': the coordinator aborted
 * it, or went away). A command that fails is reported and the worker waits for the coordinator's
 * verdict: the failure may be a peer that vanished, and the run goes on from its checkpoint.
 */
async function runRound(o: WorkerOptions, control: ControlClient, engines: EngineCache): Promise<'shutdown' | 'aborted'> {
  const plane = await o.startDataPlane();
  // The collective as soon as Setup connects it, so an Abort can close it before Setup returns.
  let connected: WorkerCollective | null = null;
  const dataPlane: DataPlane = { port: plane.port, close: () => plane.close(), connect: async (...a) => (connected = await plane.connect(...a)) };
  let setup: Setup | null = null;
  let heartbeat: HeartbeatThread | null = null;
  try {
    const reg = await registerWithBackoff(control, { host: o.advertiseHost, dataPort: dataPlane.port, pid: process.pid, workerId: `${hostname()}:${process.pid}` }, o.log);
    const seat = control.seat(reg.rank, reg.round);
    const rank = reg.rank;
    const log = o.log.child({ run: reg.runId, rank });
    log.info({ round: reg.round, asked: reg.world }, 'registered');

    // Commands arrive while one runs: an Abort must interrupt a step blocked on a dead peer.
    const queue: Command[] = [];
    let ended: string | null = null;
    let wake: () => void = () => undefined;
    const end = (why: string) => {
      if (ended !== null) return;
      ended = why;
      // Also the collective of a Setup still running (its init all-gather may wait on a dead peer).
      void (setup?.collective ?? connected)?.close();
      wake();
    };
    heartbeat = new HeartbeatThread(
      { coordinator: o.coordinator, token: o.token, ...(o.security ? { security: o.security } : {}), rank, round: reg.round, intervalMs: reg.heartbeatIntervalMs, timeoutMs: reg.heartbeatTimeoutMs },
      (reason) => end(reason),
    );
    const stream = seat.commands();
    stream.on('data', (c: Command) => {
      if (c.kind?.$case === 'abort') return end(`aborted by the coordinator: ${c.kind.value.reason}`);
      queue.push(c);
      wake();
    });
    stream.on('error', (e: Error) => end(`command stream failed: ${e.message}`));
    stream.on('end', () => end('the coordinator ended the command stream'));

    for (;;) {
      if (queue.length === 0 && ended === null) await new Promise<void>((r) => (wake = r));
      const command = queue.shift();
      const kind = command?.kind;
      if (kind?.$case === 'shutdown') {
        log.info({ reason: kind.value.reason }, 'shutdown');
        return 'shutdown';
      }
      if (ended !== null) {
        log.warn({ reason: ended }, 'round ended');
        return 'aborted';
      }
      if (!kind) continue;
      try {
        setup = await execute(kind, setup, seat, dataPlane, engines, log, o.health);
      } catch (err) {
        if (ended !== null) {
          // The round ended under the command (a peer was lost): say where it was, e.g. which collective.
          log.warn({ err: (err as Error).message, command: kind.$case }, 'command interrupted: the round ended');
          continue;
        }
        const fatal = isDeterministic(err);
        log.error({ err: (err as Error).message, command: kind.$case, fatal }, 'command failed');
        await seat.report({ kind: ReportKind.FAILED, detail: (err as Error).message, fatal }).catch(() => undefined);
      }
    }
  } finally {
    o.health?.setReady(false);
    await heartbeat?.stop();
    await (setup?.collective ?? connected)?.close();
    await dataPlane.close();
  }
}

/** Run one command; returns the (new) setup. */
async function execute(kind: NonNullable<Command['kind']>, setup: Setup | null, seat: WorkerSeat, dataPlane: DataPlane, engines: EngineCache, log: Logger, health: HealthStatus | undefined): Promise<Setup | null> {
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  const need = (what: string): Setup => {
    if (!setup) throw new KpCoordError(`${what} before setup`);
    return setup;
  };
  switch (kind.$case) {
    case 'setup': {
      const plan = parseTrainPlan(kind.value.planJson, 'setup plan');
      const s = await buildSetup(plan, seat, kind.value.peers, dataPlane, engines);
      const g = s.trainer.gatherer;
      log.info({ world: plan.world, stage: plan.zero_stage, params: s.layout.totalSize, ...(g ? { units: g.sharding.units.length, shard: g.sharding.shardSize, persistentUnits: g.persistent.size } : { padded: s.shard.paddedSize, range: [s.shard.start, s.shard.end] }), resume: plan.resume?.dir ?? null }, 'ready');
      health?.setReady(true);
      await seat.report({ kind: ReportKind.READY, seconds: seconds(), rssBytes: peakRssBytes() });
      return s;
    }
    case 'step': {
      const s = need('step');
      const { step, epoch, stepInEpoch } = kind.value;
      const r = await s.trainer.step(epoch, stepInEpoch, step);
      // peakLiveParams: stage 3's most gathered elements held or in flight at once so far (param-gatherer.ts).
      log.child({ step }).debug({ loss: r.lossSum / Math.max(1, r.tokens), gradNorm: r.gradNorm, bytesSent: r.bytesSent, computeMs: r.computeMs, commMs: r.commMs, hiddenCommMs: r.hiddenCommMs, peakLiveParams: s.trainer.gatherer?.peakLive ?? 0 }, 'step done');
      await seat.report({
        kind: ReportKind.STEP_DONE, step, lossSum: r.lossSum, tokenCount: r.tokens, gradNorm: r.gradNorm, lr: r.lr,
        samples: r.samples, bytesSent: r.bytesSent, seconds: seconds(), rssBytes: peakRssBytes(),
      });
      return s;
    }
    case 'evaluate': {
      const s = need('evaluate');
      const r = await evaluate(s, seat.rank, `eval-${kind.value.step}`);
      // Evaluation's sessions would otherwise hold their memory beside training's until the next one.
      await s.engine.releaseEvaluation();
      await seat.report({ kind: ReportKind.EVAL_DONE, step: kind.value.step, lossSum: r.lossSum, tokenCount: r.tokens, samples: r.samples, seconds: seconds() });
      return s;
    }
    case 'saveCheckpoint': {
      const s = need('checkpoint');
      const file = await saveRangeShard(s, seat.rank, kind.value.dir);
      await seat.report({ kind: ReportKind.CHECKPOINT_SAVED, step: kind.value.stepsDone, shardFile: file, seconds: seconds() });
      return s;
    }
    case 'keepBest': {
      const s = need('keep-best');
      // Only rank 0 writes the final model, so only it keeps a copy (4 bytes per parameter).
      const dest = seat.rank === 0 ? (s.best ??= new Float32Array(s.layout.totalSize)) : null;
      await wholeParams(s, dest, `keep-best-${kind.value.step}`);
      return s;
    }
    case 'saveFinal': {
      const s = need('save');
      // Rank 0 writes the whole model (or the best kept one); at stage 3 every rank takes part in gathering it.
      const weights = kind.value.useBest ? s.best : seat.rank === 0 ? new Float32Array(s.layout.totalSize) : null;
      if (!kind.value.useBest) await wholeParams(s, weights, 'save-final');
      if (seat.rank === 0) {
        if (!weights) throw new KpCoordError('asked to save the best weights, but none were kept');
        await s.model.save(kind.value.dir, weights);
      }
      await seat.report({ kind: ReportKind.SAVED, step: s.plan.total_steps, detail: kind.value.dir });
      return s;
    }
    case 'generate': {
      const s = need('generate');
      if (!s.eval) throw new KpCoordError('generate: the run has no eval split');
      // Any family, LoRA included (adapters merged into the base; a preset base from the run's seed).
      const r = await generateShare(s.eval, seat.rank, kind.value, engines.options, s.plan.seed);
      log.info({ samples: r.samples, tokens: r.tokens, seconds: seconds() }, 'eval split share generated');
      await seat.report({ kind: ReportKind.GENERATED, detail: r.file, samples: r.samples, tokenCount: r.tokens, seconds: seconds() });
      return s;
    }
    case 'shutdown':
    case 'abort':
      // Handled by the command loop before execution.
      return setup;
  }
}

/**
 * onnxruntime sessions outlive rounds: a new round of the same model and engine settings reuses
 * them. The block engine runs on this thread, or (overlap_comm) in a worker thread of its own.
 * AdamW's threads are kept the same way.
 */
class EngineCache {
  private readonly engines = new Map<string, Promise<TrainingEngine>>();
  private readonly optimizers = new Map<number, Promise<AdamWThreads>>();

  constructor(readonly options: { readonly intraOpThreads: number; readonly executionProvider: 'cpu' | 'cuda' }) {}

  /**
   * The engine for `model`; its frozen base (LoRA) is loaded where the engine runs (the engine thread
   * loads its own), the same values whenever the key is the same (model, weights, seed), or, when
   * `partitionFrozen` (stage 3), not held by the engine at all: it arrives with each pass's units.
   */
  get(model: WorkerModel, requested: { readonly dropout: boolean; readonly checkpointing: boolean; readonly overlap: boolean; readonly seed: number; readonly partitionFrozen: boolean }): Promise<TrainingEngine> {
    // A model without a frozen base has nothing to partition: the same engine at every stage.
    const partitioned = requested.partitionFrozen && model.frozenLayout !== null;
    const settings = { ...requested, partitionFrozen: partitioned };
    const key = JSON.stringify([model.spec, model.weightsDir, settings]);
    let engine = this.engines.get(key);
    if (!engine) {
      const options = { ...EngineOptionsSchema.parse(this.options), dtype: 'float32' as const, dropout: settings.dropout, checkpointing: settings.checkpointing };
      const frozenFrom = partitioned ? ('partitioned' as const) : model.frozenLayout ? { model: model.data, seed: settings.seed } : null;
      const localBase = () => (partitioned ? Promise.resolve('partitioned' as const) : model.frozen(settings.seed));
      engine = settings.overlap
        ? ThreadedBlockEngine.create(model.spec, options, frozenFrom)
        : localBase().then((base) => BlockEngine.create(model.family, options, base)).then((e) => new LocalBlockEngine(e));
      engine.catch(() => this.engines.delete(key));
      this.engines.set(key, engine);
    }
    return engine;
  }

  /** AdamW's threads (optimizer_threads), started once per process like the sessions, not per round. */
  optimizerThreads(threads: number): Promise<AdamWThreads> {
    let pool = this.optimizers.get(threads);
    if (!pool) {
      pool = AdamWThreads.create(threads);
      pool.catch(() => this.optimizers.delete(threads));
      this.optimizers.set(threads, pool);
    }
    return pool;
  }

  async release(): Promise<void> {
    for (const e of this.engines.values()) await (await e.catch(() => null))?.release();
    for (const o of this.optimizers.values()) await (await o.catch(() => null))?.close();
    this.engines.clear();
    this.optimizers.clear();
  }
}

async function buildSetup(plan: TrainPlan, seat: WorkerSeat, peers: readonly Peer[], dataPlane: DataPlane, engines: EngineCache): Promise<Setup> {
  const rank = seat.rank;
  if (peers.length !== plan.world) throw new KpCoordError(`setup: ${peers.length} peers for a world of ${plan.world}`);
  const cache = openDataCache(plan.data_cache, { modelType: resolveModelSpec(plan.model).modelType });
  const model = WorkerModel.fromPlan(plan, embeddingResize(cache.manifest));
  const layout = model.layout;
  const shard = flatShard(layout.totalSize, plan.world, rank);
  const collective = await dataPlane.connect(peers, rank, plan.world);

  // The frozen base (LoRA) lives in the engine, whole on every rank, below stage 3; at stage 3 it
  // is partitioned like the trainable parameters (partitionedParams).
  const policy = SHARDING_POLICIES[plan.zero_stage];
  const engine = await engines.get(model, { dropout: model.family.dropoutRate > 0, checkpointing: plan.gradient_checkpointing, overlap: plan.overlap_comm, seed: plan.seed, partitionFrozen: policy.partitionParameters });
  const state = policy.partitionParameters
    ? await partitionedParams(plan, model, engine, rank, collective)
    : await wholeBufferParams(plan, model, shard, collective);
  // Rank 0 keeps the best evaluation's weights for load_best_model_at_end; after a resume they
  // come from the best checkpoint.
  let best: Float32Array | null = null;
  if (rank === 0 && plan.resume?.best_dir && plan.load_best_model_at_end) {
    const bestManifest = await readVerifiedManifest(plan.resume.best_dir);
    const full = new Float32Array(bestManifest.padded_size);
    await readRange(plan.resume.best_dir, bestManifest.files, 'params', 0, full);
    best = full.subarray(0, layout.totalSize);
  }

  if (cacheVocabSize(cache.manifest) > model.family.vocabSize) {
    throw new KpCoordError(`${plan.data_cache}: tokenizer has ${cacheVocabSize(cache.manifest)} ids, the model's vocabulary only ${model.family.vocabSize} (T5 embeddings are not resized: added tokens are for decoder-only models)`);
  }
  const completionOnlyLoss = plan.causal?.completion_only_loss ?? false;
  const assemble = (split: DataSplit, indices: ArrayLike<number>) => assembleModelBatch(cache.manifest, split, indices, { completionOnlyLoss });
  const sampler = new DistributedSampler({
    size: cache.train.size,
    seed: plan.data_seed,
    perDeviceBatch: plan.per_device_train_batch_size,
    gradAccum: plan.gradient_accumulation_steps,
    world: plan.world,
    dropLast: plan.dataloader_drop_last,
    ...(plan.group_by_length ? { bucketing: { windowBatches: 50, lengths: sampleLengths(cache.train, cacheLayout(cache.manifest)) } } : {}),
  });
  if (sampler.stepsPerEpoch !== plan.steps_per_epoch) {
    throw new KpCoordError(`plan says ${plan.steps_per_epoch} steps per epoch, the data cache gives ${sampler.stepsPerEpoch}`);
  }
  const trainer = new ZeroTrainer({
    engine, layout, shard, collective, sampler,
    policy,
    ...('gatherer' in state ? { gatherer: state.gatherer } : { params: state.params }),
    ...(state.optimizerState ? { optimizerState: state.optimizerState } : {}),
    ...(plan.optimizer_threads > 1 ? { optimizerThreads: await engines.optimizerThreads(plan.optimizer_threads) } : {}),
    reduceBucketSize: plan.reduce_bucket_size,
    adamw: parseAdamWOptions(plan.adamw, 'plan.adamw'),
    schedule: lrSchedule(parseLrScheduleOptions(plan.schedule, 'plan.schedule'), plan.total_steps),
    maxGradNorm: plan.max_grad_norm,
    seed: plan.seed,
    train: cache.train,
    padId: cache.manifest.tokenizer.pad_id,
    assemble,
    scalars: (key, values) => seat.allReduce(key, values),
  });
  const evalSplit = cache.eval;
  const evalSetup = evalSplit && (plan.eval_after_steps.length > 0 || plan.generate !== null)
    ? {
        split: evalSplit,
        padId: cache.manifest.tokenizer.pad_id,
        assemble,
        // The eval split in order, partitioned across ranks: every sample exactly once.
        sampler: new DistributedSampler({ size: evalSplit.size, seed: 0, perDeviceBatch: plan.per_device_eval_batch_size, gradAccum: 1, world: plan.world, shuffle: false }),
      }
    : null;
  return { plan, model, layout, shard, engine, trainer, collective, eval: evalSetup, best };
}

type OptimizerState = { m: Float32Array; v: Float32Array; step: number };

/**
 * Stages 0-2: every rank holds the whole (padded) parameter buffer. From a checkpoint (whose files
 * may be cut for another world size or stage), the model directory's weights, or a fresh init:
 * stage 0 is replicated, so every rank initialises everything; otherwise each rank initialises
 * only the range it owns and gathers the rest (init is keyed per parameter: the same bits).
 */
async function wholeBufferParams(plan: TrainPlan, model: WorkerModel, shard: FlatShard, collective: WorkerCollective): Promise<{ params: Float32Array; optimizerState: OptimizerState | undefined }> {
  const layout = model.layout;
  let params: Float32Array;
  const loaded = plan.resume ? null : await model.loadTrainable(plan.seed, shard.paddedSize);
  if (plan.resume) {
    params = new Float32Array(shard.paddedSize);
    await readRange(plan.resume.dir, plan.resume.files, 'params', 0, params);
  } else if (loaded) {
    params = loaded;
  } else if (plan.zero_stage === 0) {
    params = new Float32Array(shard.paddedSize);
    params.set(model.initRange(plan.seed, 0, layout.totalSize));
  } else {
    params = new Float32Array(shard.paddedSize);
    const end = Math.min(shard.end, layout.totalSize);
    if (shard.start < end) params.set(model.initRange(plan.seed, shard.start, end), shard.start);
    await collective.allGather(params, 'init/params');
  }
  let optimizerState: OptimizerState | undefined;
  if (plan.resume) {
    const range = optimizerRange(shard, SHARDING_POLICIES[plan.zero_stage]);
    const m = new Float32Array(range.end - range.start);
    const v = new Float32Array(range.end - range.start);
    await readRange(plan.resume.dir, plan.resume.files, 'exp_avg', range.start, m);
    await readRange(plan.resume.dir, plan.resume.files, 'exp_avg_sq', range.start, v);
    optimizerState = { m, v, step: plan.resume.optimizer_step };
  }
  return { params, optimizerState };
}

/**
 * Stage 3: this rank's chunk of every unit ([Note: unit sharding]), in shared memory (AdamW
 * threads update it in place), read straight from a checkpoint of any world size and stage,
 * copied from the model directory's weights, or initialised chunk by chunk; the same for the
 * frozen base's units (LoRA; from the folder or the seed, never from a checkpoint, which holds
 * only what trains); then the persistent units are gathered whole.
 */
async function partitionedParams(plan: TrainPlan, model: WorkerModel, engine: TrainingEngine, rank: number, collective: WorkerCollective): Promise<{ gatherer: UnitGatherer; optimizerState: OptimizerState | undefined }> {
  if (!engine.traces) throw new KpCoordError('ZeRO stage 3 needs the block engine');
  const sharding = new UnitSharding(engine.units, plan.world, rank);
  const shard = sharedFloat32(sharding.shardSize);
  let optimizerState: OptimizerState | undefined;
  if (plan.resume) {
    const { dir, files } = plan.resume;
    const m = sharedFloat32(sharding.shardSize);
    const v = sharedFloat32(sharding.shardSize);
    // Every chunk of a tensor in one pass over the files (each opened once, only the chunks read).
    const chunks = (buf: Float32Array) => sharding.pieces.map((p) => ({ start: p.lo, dest: sharding.owned(buf, p) }));
    await readRanges(dir, files, 'params', chunks(shard));
    await readRanges(dir, files, 'exp_avg', chunks(m));
    await readRanges(dir, files, 'exp_avg_sq', chunks(v));
    optimizerState = { m, v, step: plan.resume.optimizer_step };
  } else {
    // The whole model passes through this rank once, at setup (HF weights are not sharded by unit).
    const flat = await model.loadTrainable(plan.seed);
    if (flat) for (const p of sharding.pieces) sharding.owned(shard, p).set(flat.subarray(p.lo, p.hi));
    else for (const p of sharding.pieces) if (p.hi > p.lo) sharding.owned(shard, p).set(model.initRange(plan.seed, p.lo, p.hi));
  }
  let frozen: UnitShards | null = null;
  if (engine.frozenUnits.length > 0) {
    const fs = new UnitSharding(engine.frozenUnits, plan.world, rank);
    frozen = { sharding: fs, shard: new Float32Array(fs.shardSize) };
    await model.frozenInto(plan.seed, fs.pieces.filter((p) => p.hi > p.lo).map((p) => ({ lo: p.lo, hi: p.hi, dest: fs.owned(frozen!.shard, p) })));
  }
  const gatherer = new UnitGatherer(sharding, shard, collective, {
    prefetchBucketSize: plan.stage3.prefetch_bucket_size,
    maxLiveParameters: plan.stage3.max_live_parameters,
    maxReuseDistance: plan.stage3.max_reuse_distance,
    persistenceThreshold: plan.stage3.param_persistence_threshold,
  }, frozen);
  await gatherer.gatherPersistent('init/persistent');
  return { gatherer, optimizerState };
}

/** The whole model into `dest` (null: take part only): a copy below stage 3, a gather of every unit at stage 3. */
async function wholeParams(s: Setup, dest: Float32Array | null, tag: string): Promise<void> {
  const { trainer, layout } = s;
  if (trainer.gatherer) return trainer.gatherer.gatherAll(dest, tag);
  dest?.set(trainer.params!.array.subarray(0, layout.totalSize));
}

/**
 * Register, retrying while the coordinator is unreachable or still preparing the run (it may be
 * preparing a large data cache, or not started yet in a cluster): backoff from 0.2 s doubling to
 * 5 s, for up to REGISTER_PATIENCE_MS; also while the round is full (a survivor that came back
 * late waits for the next one). Other refusals (a wrong token) fail at once.
 */
const REGISTER_PATIENCE_MS = 15 * 60 * 1000;

async function registerWithBackoff(control: ControlClient, req: Parameters<ControlClient['register']>[0], log: Logger) {
  const deadline = Date.now() + REGISTER_PATIENCE_MS;
  let delay = 200;
  let told = false;
  for (;;) {
    try {
      return await control.register(req);
    } catch (err) {
      const code = (err as { code?: number }).code;
      // UNAVAILABLE: not up or still preparing. RESOURCE_EXHAUSTED: this round is full (this
      // worker was too slow to rejoin it); the next one, after a failure, may need it.
      if ((code !== grpcStatus.UNAVAILABLE && code !== grpcStatus.RESOURCE_EXHAUSTED) || Date.now() + delay > deadline) throw err;
      if (!told) log.info({ reason: (err as Error).message }, 'coordinator not ready; retrying registration');
      told = true;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(5000, delay * 2);
    }
  }
}

/** This rank's FlatShard range of parameters and Adam moments (stage 3: its unit chunks), as one checkpoint file. */
async function saveRangeShard(setup: Setup, rank: number, dir: string): Promise<ShardFile> {
  const { shard, trainer } = setup;
  const state = trainer.optimizer;
  const g = trainer.gatherer;
  if (g) {
    const { sharding } = g;
    return writeRangeShard(dir, rank, shard.world, sharding.ownedRanges(), {
      params: sharding.packOwned(g.shard),
      exp_avg: sharding.packOwned(state.m),
      exp_avg_sq: sharding.packOwned(state.v),
    }, state.step);
  }
  const params = trainer.params!.array;
  // The optimizer may own more than this rank's range (stage 0): write the shard's part of it.
  const from = shard.start - state.start;
  const to = shard.end - state.start;
  return writeRangeShard(dir, rank, shard.world, shard, {
    params: params.subarray(shard.start, shard.end),
    exp_avg: state.m.subarray(from, to),
    exp_avg_sq: state.v.subarray(from, to),
  }, state.step);
}

/** This rank's loss sums over its share of the eval split (forward only, no dropout). */
async function evaluate(setup: Setup, rank: number, tag: string): Promise<{ lossSum: number; tokens: number; samples: number }> {
  if (!setup.eval) throw new KpCoordError('evaluate: the run has no eval split');
  const { split, sampler, assemble } = setup.eval;
  const { trainer, engine } = setup;
  let lossSum = 0;
  let tokens = 0;
  let samples = 0;
  for (const [k, indices] of sampler.epochMicroBatches(0, rank).entries()) {
    // Stage 3: every rank runs every pass's gathers, also one without samples.
    if (indices.length === 0) {
      await trainer.gatherer?.skipPass(engine.traces!.eval, `${tag}/${k}`);
      continue;
    }
    const r = await engine.forwardLoss(trainer.evalParams(`${tag}/${k}`), assemble(split, indices));
    lossSum += r.lossSum;
    tokens += r.tokenCount;
    samples += indices.length;
  }
  return { lossSum, tokens, samples };
}

/** The process's peak resident set so far (what the ZeRO memory formulas bound). */
function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/**
 * A failure that the same inputs repeat (a malformed or truncated weights file, weights that do
 * not fit the model): the coordinator fails the run instead of restarting it max_restarts times.
 */
function isDeterministic(err: unknown): boolean {
  return err instanceof InputFileError || err instanceof WeightsMismatchError;
}
