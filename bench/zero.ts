// ZeRO training benchmark: whole `kp-coord start` runs, measured in one run (DESIGN.md, Performance).
//
//   npm run bench:zero [-- --steps 4] [--worlds 2,4] [--keep]
//
// Every training run is a child `kp-coord start` (coordinator + worker processes) writing its
// summary.json into a temp dir; step times are means over steps 1.. (step 0 warms up). It prints:
//   1. data-plane bytes sent per worker per step / the (N-1)/N bandwidth-optimal bound, stages 0/1/2;
//   2. ring all-reduce throughput between worker processes / raw loopback TCP, both measured here;
//   3. ring (worker to worker) vs star (through rank 0) step time at stage 0;
//   4. coordinator overhead per step with 8 workers and a trivial model;
//   5. 2 workers x 1 thread vs 1 worker x 2 threads (and x 1 thread) at the same global batch;
//   6. peak RSS per worker at stages 0/1/2 against the ZeRO memory formula (ours and the paper's).
// The last line is `BENCH_ZERO {json}` for CI logs. About 5-10 minutes on 2 cores, ~5 GB RAM at N=4.
//
//   npm run bench:zero -- --only blocks [--blocks 7,8,9] [--blocks-worlds 1,2,4] [--overlap-steps 4]
//
// runs only the block-engine sections (stage 2 with the block engine, bucketed reduce-scatter):
//   7. peak RSS per worker for pko-t5-base (stage 2, gradient_checkpointing, reduce_bucket_size auto,
//      batch 1, the shipped sample, 2 steps) against B + 4Ψ + 4Ψ/N + 8Ψ/N + W + A, and the old 8Ψ + 8Ψ/N;
//   8. the embedded default's worker peak RSS over its whole run, gradient_checkpointing on (as shipped) and off;
//   9. overlap_comm off vs on (t5-small-bytes, N=2, stage 2): step time ratio and the share of the
//      reduce-scatter time hidden in forward+backward, from the workers' 'step done' debug lines.
// Its last line is `BENCH_ZERO_BLOCKS {json}`. About 15-25 minutes on 2 cores, ~13 GB RAM at N=4.
//
//   npm run bench:zero -- --only stage3 [--stage3 10,11,12] [--stage3-worlds 2,4,8]
//
// runs only the ZeRO stage-3 sections (per-unit all-gather and reduce-scatter, worker/param-gatherer.ts):
//  10. bytes sent per worker per step / the bound computed from the gather schedule the workers follow
//      (t5-small-bytes, global batch 8, N = 2 and 4, reuse distance 0 and persistence 0: 3 phases;
//      plus N=2 with the default reuse distance and with HF's auto persistence);
//  11. peak RSS per worker for pko-t5-base at stage 3 (section 7's run shape, reuse distance 0,
//      overlap_comm false) against B + 16Ψ/N + G + W + A, B, W, A measured as in section 7 and G from
//      the workers' peakLiveParams, and against the joint formula B + 16Ψ/N + W1 + A, W1 = what an
//      N=1 stage-3 run holds besides B, its 16Ψ shard and A (the part that does not shrink with N,
//      measured at once rather than as separate maxima); stage 2's peak (run at N <= 4, its formula
//      above) and the ratio;
//  12. step time stage 3 / stage 2 (t5-small-bytes, N=2, batch 4, overlap_comm true, 5 steps).
// Its last line is `BENCH_ZERO_STAGE3 {json}`. About 20-40 minutes on 2 cores, ~12 GB RAM at N=8.
import { runNode, stopChild } from './child-run.js';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { EMBEDDED_SAMPLE_FILE } from '../shared/config/run-config.js';
import { STAGE3_KEYS } from '../shared/config/zero-config.js';
import { InputFileError, KpCoordError } from '../shared/errors.js';
import { T5_PRESETS } from '../shared/models/presets.js';
import { parseT5Config } from '../shared/models/t5-config.js';
import { t5ParamSpecs } from '../shared/models/t5-params.js';
import { paddedFlatSize } from '../shared/sharding/flat-shard.js';
import { gatherSchedule } from '../shared/sharding/gather-schedule.js';
import { UnitSharding } from '../shared/sharding/unit-shard.js';
import { FlatLayout } from '../shared/weights/flat-layout.js';
import { RingProcs, WorkerProc } from '../test/helpers/collective-procs.js';
import { t5BlockPlan, t5ModuleOf } from '../shared/models/t5-block-plan.js';
import { gradientUnits, passTraces } from '../worker/engine/block-plan.js';
import { measureStepMemory, type ProbeResult } from './engine-memory.js';

const MiB = 1024 * 1024;
const CLI = fileURLToPath(new URL('../coordinator/cli/main.js', import.meta.url));
const RUN_TIMEOUT_MS = 30 * 60_000;
const TCP_BYTES = 256 * MiB;

// Communication and memory model: ~33 M parameters (a 126 MiB flat buffer), three quarters of them
// in the two 32128 x 384 tables (shared embedding, LM head). An embedding lookup costs no FLOPs, so
// with short inputs a step's compute stays well under a second while the buffer is big enough for
// communication to matter and for optimizer state to dominate a worker's resident memory.
const COMM_MODEL = {
  model_type: 't5', vocab_size: 32128, d_model: 384, d_kv: 64, d_ff: 1024, num_layers: 2, num_decoder_layers: 2, num_heads: 6,
  relative_attention_num_buckets: 32, relative_attention_max_distance: 128, dropout_rate: 0, feed_forward_proj: 'gated-gelu', tie_word_embeddings: false,
};
// The trivial model of the coordinator-overhead run (5,032 parameters): a step is almost all overhead.
const TINY_MODEL = { ...COMM_MODEL, vocab_size: 259, d_model: 8, d_kv: 4, d_ff: 8, num_layers: 1, num_decoder_layers: 1, num_heads: 1 };
/** Per-device batch of the communication/memory runs: the same per worker at every N. */
const COMM_BATCH = 2;

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: node dist/bench/zero.js [--steps 4] [--worlds 2,4] [--keep] [--only blocks [--blocks 7,8,9] [--blocks-worlds 1,2,4] [--overlap-steps 4]] [--only stage3 [--stage3 10,11,12] [--stage3-worlds 2,4,8]]\n`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      steps: { type: 'string', default: '4' }, worlds: { type: 'string', default: '2,4' }, keep: { type: 'boolean', default: false },
      only: { type: 'string' }, blocks: { type: 'string', default: '7,8,9' }, 'blocks-worlds': { type: 'string', default: '1,2,4' }, 'overlap-steps': { type: 'string', default: '4' },
      stage3: { type: 'string', default: '10,11,12' }, 'stage3-worlds': { type: 'string', default: '2,4,8' },
    },
  }).values;
} catch (e) {
  usage(e instanceof Error ? e.message : String(e));
}
const steps = Number(args.steps);
if (!Number.isSafeInteger(steps) || steps < 2) usage(`--steps: need an integer >= 2 (step 0 is not timed), got ${args.steps}`);
const worlds = args.worlds.split(',').map(Number);
if (worlds.some((w) => !Number.isSafeInteger(w) || w < 2)) usage(`--worlds: comma-separated integers >= 2, got ${args.worlds}`);
if (args.only !== undefined && args.only !== 'blocks' && args.only !== 'stage3') usage(`--only: 'blocks' or 'stage3', got ${args.only}`);
const blockSections = new Set(args.blocks.split(',').map(Number));
if ([...blockSections].some((x) => x !== 7 && x !== 8 && x !== 9)) usage(`--blocks: a comma-separated subset of 7,8,9, got ${args.blocks}`);
const blockWorlds = args['blocks-worlds'].split(',').map(Number);
if (blockWorlds.some((w) => !Number.isSafeInteger(w) || w < 1)) usage(`--blocks-worlds: comma-separated integers >= 1, got ${args['blocks-worlds']}`);
const overlapSteps = Number(args['overlap-steps']);
if (!Number.isSafeInteger(overlapSteps) || overlapSteps < 2) usage(`--overlap-steps: need an integer >= 2, got ${args['overlap-steps']}`);
const stage3Sections = new Set(args.stage3.split(',').map(Number));
if ([...stage3Sections].some((x) => x !== 10 && x !== 11 && x !== 12)) usage(`--stage3: a comma-separated subset of 10,11,12, got ${args.stage3}`);
const stage3Worlds = args['stage3-worlds'].split(',').map(Number);
if (stage3Worlds.some((w) => !Number.isSafeInteger(w) || w < 2)) usage(`--stage3-worlds: comma-separated integers >= 2, got ${args['stage3-worlds']}`);

const load1 = () => loadavg()[0]!;
const loads = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const MB = (bytes: number) => (bytes / 1e6).toFixed(1);
const fixed = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

// ---------------------------------------------------------------------------------------------
// Child processes

/** Run the kp-coord CLI to completion; a non-zero exit rejects with the tail of its stderr. */
function runCli(cliArgs: readonly string[], label: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  // The workers inherit the CLI's environment (coordinator/local-workers.ts), KPCOORD_LOG_LEVEL included.
  return runNode([CLI, ...cliArgs], { label: `${label}: kp-coord ${cliArgs[0]}`, timeoutMs: RUN_TIMEOUT_MS, env });
}

// ---------------------------------------------------------------------------------------------
// Inputs: a short-input data set and two model directories, in the temp dir

const SampleRow = z.object({ title: z.string(), body: z.string(), keyphrases: z.string() });
const SHORT_TITLE = 10;
const SHORT_BODY = 6;
const SHORT_TARGET = 3;
const syllables = (s: string) => [...s].filter((c) => c >= '\uAC00' && c <= '\uD7A3').join('');

/**
 * The shipped sample articles cut to the first Hangul syllables of title, body and a keyphrase, so
 * every input is 71 byte tokens and every target 10: the same shapes on every rank and step, so
 * step time and activation memory do not depend on which samples a rank draws. Returns the row count.
 */
function writeShortRows(out: string): number {
  const lines = readFileSync(EMBEDDED_SAMPLE_FILE, 'utf8').split('\n').filter((l) => l.trim() !== '');
  const rows: string[] = [];
  lines.forEach((line, i) => {
    let parsed;
    try {
      parsed = SampleRow.safeParse(JSON.parse(line));
    } catch (cause) {
      throw new InputFileError(EMBEDDED_SAMPLE_FILE, `line ${i + 1}`, 'not JSON', { cause });
    }
    if (!parsed.success) throw new InputFileError(EMBEDDED_SAMPLE_FILE, `line ${i + 1}`, parsed.error.issues.map((x) => `${x.path.join('.')}: ${x.message}`).join('; '));
    const r = parsed.data;
    const title = syllables(r.title).slice(0, SHORT_TITLE);
    const body = syllables(r.body).slice(0, SHORT_BODY);
    const phrase = r.keyphrases.split(';').map(syllables).find((p) => p.length >= SHORT_TARGET);
    // A row too short to cut to the common shape is left out (none in the shipped file).
    if (title.length === SHORT_TITLE && body.length === SHORT_BODY && phrase) rows.push(JSON.stringify({ title, body, keyphrases: phrase.slice(0, SHORT_TARGET) }));
  });
  writeFileSync(out, `${rows.join('\n')}\n`);
  return rows.length;
}

const InitModelOut = z.object({ parameters: z.number().int().positive() });

/** A freshly initialised model directory from `config`; returns its parameter count Ψ. */
async function initModel(dir: string, name: string, config: object): Promise<number> {
  const configPath = join(dir, `${name}.json`);
  writeFileSync(configPath, JSON.stringify(config));
  const out = await runCli(['dev', 'init-model', '--config', configPath, '--out', join(dir, name)], `init ${name}`);
  return InitModelOut.parse(JSON.parse(out.trim().split('\n').at(-1)!)).parameters;
}

// ---------------------------------------------------------------------------------------------
// Training runs

interface RunSpec {
  readonly key: string;
  readonly workers: number;
  readonly threads: number;
  readonly collective: 'ring' | 'star';
  readonly model: string;
  readonly data: string;
  readonly stage: 0 | 1 | 2 | 3;
  readonly perDevice: number;
  readonly accum: number;
  readonly steps: number;
  /** null keeps the embedded default's dropout (0.1). */
  readonly dropout: number | null;
  /** More `--set` overrides (the block sections: gradient_checkpointing, bucket size, overlap_comm). */
  readonly extraSet?: readonly string[];
  /** Worker log level (the block sections read the 'step done' debug lines). */
  readonly logLevel?: string;
}

const SummarySchema = z.object({
  world_size: z.number(),
  zero_stage: z.number(),
  train_loss: z.array(z.object({ step: z.number(), loss: z.number(), seconds: z.number(), worker_seconds: z.number(), bytes_sent_per_worker: z.number() })),
  worker_peak_rss_bytes: z.array(z.number()),
  wall_seconds: z.number(),
});

interface RunResult {
  readonly key: string;
  readonly workers: number;
  readonly threads: number;
  readonly collective: string;
  readonly stage: number;
  readonly load1: number;
  /** Means over steps 1.. of the coordinator's step time, the slowest worker's, and their gap. */
  readonly stepSeconds: number;
  readonly workerSeconds: number;
  readonly overheadSeconds: number;
  /** The coordinator's time of each timed step (steps 1..). */
  readonly stepSecondsEach: readonly number[];
  /** Data-plane bytes the busiest rank sent in one step (the same every step). */
  readonly bytesSentPerWorker: number;
  readonly peakRssBytes: readonly number[];
  readonly wallSeconds: number;
  readonly outputDir: string;
}

async function train(spec: RunSpec, tmp: string): Promise<RunResult> {
  const outputDir = join(tmp, 'runs', spec.key);
  const set = [
    `model=${spec.model}`, `data=${spec.data}`, `output_dir=${outputDir}`, `max_steps=${spec.steps}`,
    `zero_optimization.stage=${spec.stage}`, `per_device_train_batch_size=${spec.perDevice}`, `gradient_accumulation_steps=${spec.accum}`,
    ...(spec.dropout !== null ? [`dropout_rate=${spec.dropout}`] : []),
    // The embedded default's lifecycle (evaluation, checkpoints, early stopping) off: only training
    // steps are measured, and no eval session adds to a worker's memory.
    // predict_with_generate too: with it the end of a run decodes the eval split (eval_strategy=no
    // does not skip it), and the decoder sessions add to the peak RSS measured here.
    'eval_strategy=no', 'save_strategy=no', 'load_best_model_at_end=false', 'early_stopping_patience=null', 'predict_with_generate=false',
    ...(spec.extraSet ?? []),
  ];
  const load = load1();
  const t0 = performance.now();
  const env = spec.logLevel ? { ...process.env, KPCOORD_LOG_LEVEL: spec.logLevel } : process.env;
  await runCli(['start', '--workers', String(spec.workers), '--threads-per-worker', String(spec.threads), '--collective', spec.collective, ...set.flatMap((s) => ['--set', s])], spec.key, env);
  const summaryPath = join(outputDir, 'summary.json');
  const parsed = SummarySchema.safeParse(JSON.parse(readFileSync(summaryPath, 'utf8')));
  if (!parsed.success) throw new InputFileError(summaryPath, '', parsed.error.issues.map((x) => `${x.path.join('.')}: ${x.message}`).join('; '));
  const s = parsed.data;
  // The final model (126 MiB for the communication model) is not needed; keep /tmp small.
  rmSync(join(outputDir, 'final'), { recursive: true, force: true });
  const timed = s.train_loss.filter((r) => r.step >= 1);
  const r: RunResult = {
    key: spec.key, workers: spec.workers, threads: spec.threads, collective: spec.collective, stage: spec.stage, load1: load,
    stepSeconds: mean(timed.map((x) => x.seconds)),
    workerSeconds: mean(timed.map((x) => x.worker_seconds)),
    overheadSeconds: mean(timed.map((x) => x.seconds - x.worker_seconds)),
    stepSecondsEach: timed.map((x) => x.seconds),
    bytesSentPerWorker: Math.max(...timed.map((x) => x.bytes_sent_per_worker)),
    peakRssBytes: s.worker_peak_rss_bytes,
    wallSeconds: s.wall_seconds,
    outputDir,
  };
  console.log(
    `  ${spec.key.padEnd(22)} step ${fixed(r.stepSeconds, 3)} s (slowest worker ${fixed(r.workerSeconds, 3)} s), sent ${MB(r.bytesSentPerWorker)} MB/step, ` +
      `peak RSS ${MB(Math.max(...r.peakRssBytes))} MB, whole run ${((performance.now() - t0) / 1000).toFixed(1)} s, load ${load.toFixed(2)} -> ${loads()}`,
  );
  return r;
}

// ---------------------------------------------------------------------------------------------
// Data plane against raw TCP (the approach of bench/collectives.ts)

/** One-way loopback TCP between two Node processes, GB/s, best of 3 sends of `bytes`. */
async function rawTcpGbps(bytes: number): Promise<number> {
  const sink = WorkerProc.spawn({ mode: 'tcp-sink', bytes }, 'tcp sink');
  try {
    const { port } = await sink.next('listening', 30_000);
    const piece = Buffer.alloc(MiB, 7);
    let best = Infinity;
    for (let round = 0; round < 3; round++) {
      const socket = connect(port, '127.0.0.1');
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      const t0 = performance.now();
      for (let sent = 0; sent < bytes; sent += piece.length) {
        if (!socket.write(piece)) await new Promise((resolve) => socket.once('drain', resolve));
      }
      await sink.next('tcp-received', 60_000);
      best = Math.min(best, (performance.now() - t0) / 1000);
      socket.destroy();
    }
    return bytes / best / 1e9;
  } finally {
    await sink.stop();
  }
}

interface RingMeasure {
  readonly world: number;
  readonly seconds: number;
  readonly bytesSentPerRank: number;
  readonly gbpsPerRank: number;
}

/** Ring all-reduce of `length` floats across `world` processes: the slowest rank's time, best of 2 after a warm-up. */
async function ringAllReduce(world: number, length: number): Promise<RingMeasure> {
  const procs = await RingProcs.start({ tokens: Array<string>(world).fill('bench-zero-token'), timeoutMs: 300_000, replyTimeoutMs: 600_000 });
  try {
    const request = { op: 'allReduce' as const, seed: 1, length, returnResult: false };
    await procs.run({ ...request, tag: 'warm-up', repeats: 1 });
    const repeats = 2;
    const ran = await procs.run({ ...request, tag: 'timed', repeats });
    if (new Set(ran.map((m) => m.sha256)).size > 1) throw new KpCoordError(`ring all-reduce on ${world} ranks: ranks disagree on the result`);
    const seconds = Math.min(...Array.from({ length: repeats }, (_, i) => Math.max(...ran.map((m) => m.seconds[i]!))));
    const bytesSentPerRank = mean(ran.map((m) => m.bytesSent / repeats));
    return { world, seconds, bytesSentPerRank, gbpsPerRank: bytesSentPerRank / seconds / 1e9 };
  } finally {
    await procs.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Formulas

/** Bandwidth-optimal bytes per rank per step: phases x (N-1)/N x the padded flat buffer. */
function boundBytes(stage: number, world: number, psi: number): { phases: number; bytes: number } {
  const phases = stage === 1 ? 3 : 2; // 0: all-reduce (2); 1: all-reduce + param all-gather; 2: reduce-scatter + all-gather
  return { phases, bytes: (phases * (world - 1) * paddedFlatSize(psi, world) * 4) / world };
}

/**
 * Model state per worker, fp32, optimizer in host memory: params 4Ψ' + a full local gradient 4Ψ'
 * (every stage: sharding-policy.ts, [Note: stage 2 memory]) + Adam m, v 8Ψ' (stage 0) or 8Ψ'/N.
 */
function ourStateBytes(stage: number, world: number, psi: number, _accum: number): number {
  const padded = paddedFlatSize(psi, world);
  const adam = stage === 0 ? 8 * padded : (8 * padded) / world;
  // Stage 2 keeps only the gradient shard (buckets are reduce-scattered as the backward makes
  // them); stages 0/1 a full local gradient. Micro-batches accumulate in place either way.
  const grad = stage === 2 ? (4 * padded) / world : 4 * padded;
  return 4 * padded + grad + adam;
}

/** The ZeRO paper's fp32 model states: 16Ψ, 8Ψ + 8Ψ/N, 4Ψ + 12Ψ/N. */
function paperStateBytes(stage: number, world: number, psi: number): number {
  return stage === 0 ? 16 * psi : stage === 1 ? 8 * psi + (8 * psi) / world : 4 * psi + (12 * psi) / world;
}

// ---------------------------------------------------------------------------------------------

function table(header: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((row) => row[i]!.length)));
  const line = (row: readonly string[]) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}

async function mainAll(tmp: string): Promise<void> {
  const started = performance.now();
  console.log(`kp-coord ZeRO bench: node ${process.version}, ${cpus().length} cpus, ${steps} steps per run (step 0 not timed), worlds ${worlds.join(',')}`);
  const loadStart = loads();
  console.log(`load average at start: ${loadStart} (other busy processes make every number below worse)`);

  // inputs
  const shortRows = writeShortRows(join(tmp, 'short.jsonl'));
  await runCli(['data', 'prepare', '--input', join(tmp, 'short.jsonl'), '--preset', 'embedded-sample', '--out', join(tmp, 'short-cache')], 'prepare short data');
  await runCli(['data', 'prepare', '--input', EMBEDDED_SAMPLE_FILE, '--preset', 'embedded-sample', '--out', join(tmp, 'sample-cache')], 'prepare sample data');
  const psi = await initModel(tmp, 'comm-model', COMM_MODEL);
  const tinyPsi = await initModel(tmp, 'tiny-model', TINY_MODEL);
  console.log(`communication/memory model: Ψ = ${psi} parameters (${MB(psi * 4)} MB fp32), per-device batch ${COMM_BATCH}, ${shortRows} short rows (inputs ${SHORT_TITLE} + ${SHORT_BODY} Hangul syllables, targets ${SHORT_TARGET}: one shape for every sample); tiny model Ψ = ${tinyPsi}`);

  // 2. yardstick and ring between plain worker processes, on the model's padded buffer
  console.log('');
  console.log('data plane:');
  const tcpGbps = await rawTcpGbps(TCP_BYTES);
  console.log(`  raw loopback TCP, one way, ${TCP_BYTES / MiB} MiB in 1 MiB writes: ${tcpGbps.toFixed(3)} GB/s (load ${loads()})`);
  const rings: RingMeasure[] = [];
  for (const world of worlds) {
    const m = await ringAllReduce(world, paddedFlatSize(psi, world));
    rings.push(m);
    console.log(`  ring allReduce N=${world} of ${MB(paddedFlatSize(psi, world) * 4)} MB: ${(m.seconds * 1e3).toFixed(0)} ms, ${m.gbpsPerRank.toFixed(3)} GB/s sent per rank (load ${loads()})`);
  }

  // training runs
  console.log('');
  console.log('training runs (kp-coord start):');
  const comm = { model: join(tmp, 'comm-model'), data: join(tmp, 'short-cache'), perDevice: COMM_BATCH, accum: 1, steps, dropout: 0, threads: 1 };
  const runs: RunResult[] = [];
  const run = async (spec: RunSpec) => {
    const r = await train(spec, tmp);
    runs.push(r);
    return r;
  };
  const tiny = await run({ key: 'tiny N=8', workers: 8, threads: 1, collective: 'ring', model: join(tmp, 'tiny-model'), data: join(tmp, 'short-cache'), stage: 0, perDevice: 1, accum: 1, steps: 2 * steps, dropout: 0 });
  const single = await run({ ...comm, key: 'comm N=1 s0', workers: 1, collective: 'ring', stage: 0 });
  const byWorld = new Map<number, { ring: RunResult[]; star: RunResult }>();
  for (const world of worlds) {
    const s0 = await run({ ...comm, key: `comm N=${world} s0 ring`, workers: world, collective: 'ring', stage: 0 });
    const star = await run({ ...comm, key: `comm N=${world} s0 star`, workers: world, collective: 'star', stage: 0 });
    const s1 = await run({ ...comm, key: `comm N=${world} s1`, workers: world, collective: 'ring', stage: 1 });
    const s2 = await run({ ...comm, key: `comm N=${world} s2`, workers: world, collective: 'ring', stage: 2 });
    byWorld.set(world, { ring: [s0, s1, s2], star });
  }
  // 5. the main job's model and data, global batch 8 three ways
  const mainJob = { model: 'preset:t5-small-bytes', data: join(tmp, 'sample-cache'), collective: 'ring' as const, stage: 2 as const, perDevice: 4, steps, dropout: null };
  const twoWorkers = await run({ ...mainJob, key: 'small 2w x 1t', workers: 2, threads: 1, accum: 1 });
  const oneWorkerTwoThreads = await run({ ...mainJob, key: 'small 1w x 2t accum 2', workers: 1, threads: 2, accum: 2 });
  const oneWorkerOneThread = await run({ ...mainJob, key: 'small 1w x 1t accum 2', workers: 1, threads: 1, accum: 2 });

  // 1. bytes against the bound
  console.log('');
  console.log(`1. data-plane bytes sent per worker per step / bandwidth-optimal bound (phases x (N-1)/N x padded flat bytes)`);
  const bytesRows: { world: number; stage: number; phases: number; boundBytes: number; sentBytes: number; ratio: number }[] = [];
  for (const [world, w] of byWorld) {
    for (const r of w.ring) {
      const b = boundBytes(r.stage, world, psi);
      bytesRows.push({ world, stage: r.stage, phases: b.phases, boundBytes: b.bytes, sentBytes: r.bytesSentPerWorker, ratio: r.bytesSentPerWorker / b.bytes });
    }
  }
  table(['N', 'stage', 'phases', 'bound MB', 'sent MB', 'sent/bound'], bytesRows.map((b) => [`${b.world}`, `${b.stage}`, `${b.phases}`, MB(b.boundBytes), MB(b.sentBytes), b.ratio.toFixed(4)]));
  for (const [world, w] of byWorld) {
    console.log(`   star N=${world} (stage 0): rank 0 sent ${MB(w.star.bytesSentPerWorker)} MB = ${fixed(w.star.bytesSentPerWorker / boundBytes(0, world, psi).bytes)} x the ring bound`);
  }

  // 2. data plane vs TCP
  console.log('');
  console.log(`2. data-plane throughput / raw loopback TCP (${tcpGbps.toFixed(3)} GB/s one way): ring allReduce between worker processes`);
  table(['N', 'allReduce ms', 'GB/s sent per rank', 'data plane / TCP'], rings.map((m) => [`${m.world}`, (m.seconds * 1e3).toFixed(0), m.gbpsPerRank.toFixed(3), (m.gbpsPerRank / tcpGbps).toFixed(3)]));
  // In training the collective time cannot be read off directly; with N=2 on 2 cores each worker has
  // its own core, so (ring step - single-worker step at the same per-device batch) estimates it.
  const ring2 = byWorld.get(2)?.ring[0];
  const inTraining = ring2 ? ring2.bytesSentPerWorker / (ring2.stepSeconds - single.stepSeconds) / 1e9 : Number.NaN;
  if (ring2) {
    console.log(`   estimate in training, N=2 stage 0: ${MB(ring2.bytesSentPerWorker)} MB / (${fixed(ring2.stepSeconds, 3)} s - N=1 step ${fixed(single.stepSeconds, 3)} s) = ${inTraining > 0 ? inTraining.toFixed(3) : 'n/a'} GB/s = ${inTraining > 0 ? (inTraining / tcpGbps).toFixed(3) : 'n/a'} x TCP`);
  }

  // 3. ring vs star
  console.log('');
  console.log('3. P2P ring vs star (through rank 0), stage 0, same run config: mean step seconds');
  const ringVsStar = [...byWorld].map(([world, w]) => ({ world, ringSeconds: w.ring[0]!.stepSeconds, starSeconds: w.star.stepSeconds, starOverRing: w.star.stepSeconds / w.ring[0]!.stepSeconds }));
  table(['N', 'ring s', 'star s', 'star/ring'], ringVsStar.map((x) => [`${x.world}`, x.ringSeconds.toFixed(3), x.starSeconds.toFixed(3), x.starOverRing.toFixed(2)]));
  console.log(`   N=1 (no communication) step: ${single.stepSeconds.toFixed(3)} s`);

  // 4. coordinator overhead
  console.log('');
  console.log(`4. coordinator overhead, 8 workers, tiny model (Ψ = ${tinyPsi}), 1 sample per worker, ${2 * steps} steps (means over steps 1..)`);
  table(['step s', 'slowest worker s', 'overhead s', 'overhead/step'], [[tiny.stepSeconds.toFixed(4), tiny.workerSeconds.toFixed(4), tiny.overheadSeconds.toFixed(4), (tiny.overheadSeconds / tiny.stepSeconds).toFixed(3)]]);

  // 5. scaling
  console.log('');
  console.log('5. t5-small-bytes on the shipped sample (inputs ~810 byte tokens), global batch 8, stage 2: mean step seconds');
  const scaling = {
    twoWorkersOneThread: twoWorkers.stepSeconds,
    oneWorkerTwoThreads: oneWorkerTwoThreads.stepSeconds,
    oneWorkerOneThread: oneWorkerOneThread.stepSeconds,
    threadsOverWorkers: oneWorkerTwoThreads.stepSeconds / twoWorkers.stepSeconds,
    workerSpeedup: oneWorkerOneThread.stepSeconds / twoWorkers.stepSeconds,
    threadSpeedup: oneWorkerOneThread.stepSeconds / oneWorkerTwoThreads.stepSeconds,
  };
  table(
    ['2 workers x 1 thread s', '1 worker x 2 threads s', '1 worker x 1 thread s'],
    [[scaling.twoWorkersOneThread.toFixed(3), scaling.oneWorkerTwoThreads.toFixed(3), scaling.oneWorkerOneThread.toFixed(3)]],
  );
  console.log(`   (1 worker x 2 threads) / (2 workers x 1 thread) step time: ${scaling.threadsOverWorkers.toFixed(2)} (> 1: two processes beat two threads)`);
  console.log(`   speedup over 1 worker x 1 thread: 2 workers ${scaling.workerSpeedup.toFixed(2)} (efficiency ${(scaling.workerSpeedup / 2).toFixed(2)}), 2 threads ${scaling.threadSpeedup.toFixed(2)} (efficiency ${(scaling.threadSpeedup / 2).toFixed(2)})`);

  // 6. memory
  console.log('');
  const baseline = mean(tiny.peakRssBytes);
  const activations = Math.max(...single.peakRssBytes) - baseline - ourStateBytes(0, 1, psi, 1);
  console.log(`6. peak RSS per worker vs the ZeRO formula (fp32, optimizer on CPU), Ψ = ${psi} (4Ψ = ${MB(4 * psi)} MB)`);
  console.log(`   baseline B (worker with the tiny model, mean of 8) = ${MB(baseline)} MB; activations A (N=1 stage 0 peak - B - 16Ψ) = ${MB(activations)} MB`);
  console.log(`   ours: params 4Ψ + gradient 4Ψ (stages 0/1) or its shard 4Ψ/N (stage 2) + Adam 8Ψ (stage 0) or 8Ψ/N; paper: 16Ψ, 8Ψ + 8Ψ/N, 4Ψ + 12Ψ/N`);
  const memoryRows: { world: number; stage: number; peakMaxBytes: number; peakMinBytes: number; ourStateBytes: number; paperStateBytes: number; measuredOverFormula: number; stateMeasuredOverOurs: number }[] = [];
  for (const [world, w] of byWorld) {
    for (const r of w.ring) {
      const ours = ourStateBytes(r.stage, world, psi, 1);
      const peak = Math.max(...r.peakRssBytes);
      memoryRows.push({
        world, stage: r.stage, peakMaxBytes: peak, peakMinBytes: Math.min(...r.peakRssBytes), ourStateBytes: ours, paperStateBytes: paperStateBytes(r.stage, world, psi),
        measuredOverFormula: peak / (baseline + activations + ours),
        stateMeasuredOverOurs: (peak - baseline - activations) / ours,
      });
    }
  }
  table(
    ['N', 'stage', 'peak RSS MB (max, min)', 'ours state MB', 'B+A+ours MB', 'measured/(B+A+ours)', '(peak-B-A)/ours', 'paper MB', 'ours/paper'],
    memoryRows.map((m) => [
      `${m.world}`, `${m.stage}`, `${MB(m.peakMaxBytes)}, ${MB(m.peakMinBytes)}`, MB(m.ourStateBytes), MB(baseline + activations + m.ourStateBytes),
      m.measuredOverFormula.toFixed(3), m.stateMeasuredOverOurs.toFixed(3), MB(m.paperStateBytes), (m.ourStateBytes / m.paperStateBytes).toFixed(2),
    ]),
  );
  console.log('   Stage 2 is the paper\'s 4Ψ + 12Ψ/N: the block engine hands each block\'s gradients to a bucketed reduce-scatter as the');
  console.log('   backward makes them, so no rank holds a whole-model gradient (section 7 measures it on the pko-t5-base shape).');

  const loadEnd = loads();
  const crowded = runs.filter((r) => r.load1 > cpus().length);
  console.log('');
  console.log(`load average at end: ${loadEnd}; bench took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  if (crowded.length > 0) {
    console.log(`note: the 1-minute load exceeded the ${cpus().length} cpus before ${crowded.length} of ${runs.length} runs (${crowded.map((r) => r.key).join('; ')}): their times include waiting for cores other processes held; byte counts and memory are unaffected`);
  }
  console.log('');
  console.log(
    `BENCH_ZERO ${JSON.stringify({
      steps, worlds, psi, tinyPsi, loadStart, loadEnd, rawTcpGbps: tcpGbps,
      bytes: bytesRows,
      dataPlane: { ring: rings.map((m) => ({ ...m, overTcp: m.gbpsPerRank / tcpGbps })), inTrainingEstimateN2Gbps: inTraining > 0 ? inTraining : null },
      ringVsStar, singleWorkerStepSeconds: single.stepSeconds,
      coordinator: { workers: 8, stepSeconds: tiny.stepSeconds, slowestWorkerSeconds: tiny.workerSeconds, overheadSeconds: tiny.overheadSeconds },
      scaling,
      memory: { baselineBytes: baseline, activationsBytes: activations, rows: memoryRows },
      runs,
    })}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Block-engine sections (--only blocks): 7 pko-t5-base peak RSS vs the block-engine stage-2 formula,
// 8 the embedded default's peak RSS with checkpointing on and off, 9 overlap_comm off vs on.

const BLOCK_PRESET = 'pko-t5-base';
/** The debug line every worker logs per step (worker/worker-main.ts). */
const StepDoneSchema = z.object({ msg: z.literal('step done'), step: z.number(), computeMs: z.number(), commMs: z.number(), hiddenCommMs: z.number(), peakLiveParams: z.number().default(0) });
type StepDone = z.infer<typeof StepDoneSchema>;

/** The 'step done' lines of every worker log of a run (OUTPUT_DIR/logs/worker-<i>.log). */
function stepDoneLines(outputDir: string): StepDone[] {
  const dir = join(outputDir, 'logs');
  const lines: StepDone[] = [];
  for (const f of readdirSync(dir).filter((n) => /^worker-\d+\.log$/.test(n))) {
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (!line.includes('"step done"')) continue;
      const parsed = StepDoneSchema.safeParse(JSON.parse(line));
      if (parsed.success) lines.push(parsed.data);
    }
  }
  return lines;
}

const DefaultSummarySchema = z.object({ worker_peak_rss_bytes: z.array(z.number()), wall_seconds: z.number() });

/** `kp-coord start --workers 2` with no config (the embedded default), only output_dir and `extra` set. */
async function runDefault(tmp: string, key: string, extra: readonly string[]): Promise<{ key: string; peakRssBytes: number[]; wallSeconds: number; load1: number; loadsAfter: string }> {
  const outputDir = join(tmp, 'runs', key.replace(/[^A-Za-z0-9=.-]+/g, '-'));
  const load = load1();
  const t0 = performance.now();
  await runCli(['start', '--workers', '2', ...[`output_dir=${outputDir}`, ...extra].flatMap((s) => ['--set', s])], key);
  const summaryPath = join(outputDir, 'summary.json');
  const parsed = DefaultSummarySchema.safeParse(JSON.parse(readFileSync(summaryPath, 'utf8')));
  if (!parsed.success) throw new InputFileError(summaryPath, '', parsed.error.issues.map((x) => `${x.path.join('.')}: ${x.message}`).join('; '));
  rmSync(outputDir, { recursive: true, force: true });
  const r = { key, peakRssBytes: parsed.data.worker_peak_rss_bytes, wallSeconds: parsed.data.wall_seconds, load1: load, loadsAfter: loads() };
  console.log(`  ${key.padEnd(34)} peak RSS per worker ${r.peakRssBytes.map(MB).join(', ')} MB, whole run ${((performance.now() - t0) / 1000).toFixed(1)} s, load ${load.toFixed(2)} -> ${r.loadsAfter}`);
  return r;
}

const LengthStats = z.object({ mean: z.number(), p95: z.number(), max: z.number() });
type TrainLengths = { input: z.infer<typeof LengthStats>; label: z.infer<typeof LengthStats> };

/** Prepare the shipped sample into tmp/sample-cache; its train split's token lengths (report.json). */
async function prepareSample(tmp: string): Promise<TrainLengths> {
  await runCli(['data', 'prepare', '--input', EMBEDDED_SAMPLE_FILE, '--preset', 'embedded-sample', '--out', join(tmp, 'sample-cache')], 'prepare sample data');
  const report = z
    .object({ lengths: z.object({ train: z.object({ input: LengthStats, label: LengthStats }) }) })
    .parse(JSON.parse(readFileSync(join(tmp, 'sample-cache', 'report.json'), 'utf8')));
  return report.lengths.train;
}

/** The pko-t5-base memory run of sections 7 and 11: batch 1, checkpointing, 2 steps, shipped sample, cores / N threads. */
function pkoRunSpec(tmp: string, key: string, world: number, stage: 2 | 3, extraSet: readonly string[]): RunSpec {
  return {
    key, workers: world, threads: Math.max(1, Math.floor(cpus().length / world)), collective: 'ring', model: `preset:${BLOCK_PRESET}`, data: join(tmp, 'sample-cache'),
    stage, perDevice: 1, accum: 1, steps: 2, dropout: 0, extraSet: ['gradient_checkpointing=true', 'zero_optimization.reduce_bucket_size=auto', ...extraSet],
    ...(stage === 3 ? { logLevel: 'debug' } : {}),
  };
}

interface BlockMemoryTerms {
  readonly psi: number;
  readonly dModel: number;
  readonly srcLen: number;
  readonly tgtLen: number;
  readonly tinyPsi: number;
  /** B: peak RSS of a worker training the tiny model the same way (N=1, stage 2). */
  readonly baselineBytes: number;
  /** A: the saved block inputs and masks at the sample's longest input and label. */
  readonly activationsBytes: number;
  /** W: one block engine's F+B working set above params, gradient and A (engine-memory.ts probe). */
  readonly workingSetBytes: number;
  readonly probe: ProbeResult;
}

/** B, A and W of the pko-t5-base memory formula (sections 7 and 11), measured here; prints `title` and the terms. */
async function blockMemoryTerms(tmp: string, lengths: TrainLengths, title: (psi: number, dModel: number) => string): Promise<BlockMemoryTerms> {
  const config = parseT5Config(T5_PRESETS[BLOCK_PRESET], `preset:${BLOCK_PRESET}`);
  const psi = FlatLayout.fromSpecs(t5ParamSpecs(config)).totalSize;
  const d = config.dModel;
  console.log(title(psi, d));
  // The longest training input and label of the sample: an upper bound for the two samples a rank draws.
  const src = lengths.input.max;
  const tgt = lengths.label.max;
  // B: a worker process with a trivial model (as section 6), same run shape
  const tinyPsi = await initModel(tmp, 'tiny-model', TINY_MODEL);
  const tiny = await train(
    { key: 'B tiny N=1 s2', workers: 1, threads: 1, collective: 'ring', model: join(tmp, 'tiny-model'), data: join(tmp, 'sample-cache'), stage: 2, perDevice: 1, accum: 1, steps: 2, dropout: 0, extraSet: ['gradient_checkpointing=true', 'zero_optimization.reduce_bucket_size=auto'] },
    tmp,
  );
  const baseline = Math.max(...tiny.peakRssBytes);
  // W: one block engine's F+B with checkpointing, in a child (engine-memory.ts): its peak minus its
  // after-init RSS (node + params) minus the gradient buffer the sink fills (4Ψ) minus A.
  const numEnc = config.numEncoderLayers;
  const numDec = config.numDecoderLayers;
  const savedInputs = 4 * 1 * ((numEnc + 1) * src * d + (numDec + 1) * tgt * d);
  const masks = 4 * 1 * (2 * src + 2 * tgt); // encoder/cross mask over src, decoder mask and labels over tgt
  const activations = savedInputs + masks;
  const loadW = loads();
  const probe = await measureStepMemory({ preset: BLOCK_PRESET, srcLen: src, tgtLen: tgt, batch: 1, phase: 'train', memoryArena: true, memoryPattern: false, engine: 'block-on', steps: 2 }, 2);
  const working = probe.peakMiB * MiB - probe.initMiB * MiB - 4 * psi - activations;
  console.log(`   B = ${MB(baseline)} MB (worker peak RSS, tiny model Ψ = ${tinyPsi}, N=1 stage 2, 2 steps); A = saved block inputs (${numEnc}+1) x ${src} x ${d} + (${numDec}+1) x ${tgt} x ${d} floats + masks = ${MB(activations)} MB`);
  console.log(`   W = block-engine F+B probe (checkpointing on, ${src}/${tgt} x 1, arena on, 2 threads): peak ${(probe.peakMiB * MiB / 1e6).toFixed(1)} MB - after init ${(probe.initMiB * MiB / 1e6).toFixed(1)} MB - gradient buffer 4Ψ - A = ${MB(working)} MB (load ${loadW} -> ${loads()})`);
  return { psi, dModel: d, srcLen: src, tgtLen: tgt, tinyPsi, baselineBytes: baseline, activationsBytes: activations, workingSetBytes: working, probe };
}

/** Section 7's stage-2 formula: B + 4Ψ + 4Ψ/N + 8Ψ/N + buckets (one filling, one in flight) + W + A, Ψ padded to N. */
function stage2Formula(m: BlockMemoryTerms, world: number): { terms: { B: number; params: number; gradShard: number; adam: number; buckets: number; W: number; A: number }; bytes: number } {
  const p = paddedFlatSize(m.psi, world);
  const terms = { B: m.baselineBytes, params: 4 * p, gradShard: (4 * p) / world, adam: (8 * p) / world, buckets: 2 * 4 * m.dModel * m.dModel, W: m.workingSetBytes, A: m.activationsBytes };
  return { terms, bytes: Object.values(terms).reduce((a, b) => a + b, 0) };
}

async function mainBlocks(tmp: string): Promise<void> {
  const started = performance.now();
  const loadStart = loads();
  console.log(`kp-coord ZeRO bench, block-engine sections ${[...blockSections].sort().join(',')}: node ${process.version}, ${cpus().length} cpus; load average at start: ${loadStart}`);
  const trainLengths = await prepareSample(tmp);
  const out: Record<string, unknown> = { loadStart };

  // 9. overlap_comm off vs on (first: the timing-sensitive section runs before the long ones)
  if (blockSections.has(9)) {
    console.log('');
    console.log(`9. overlap_comm: t5-small-bytes, shipped sample, N=2 x 1 thread, stage 2, reduce_bucket_size auto, gradient_checkpointing, batch 4, ${overlapSteps} steps (step 0 not counted)`);
    const rows = [];
    for (const overlap of [false, true]) {
      const r = await train(
        {
          key: `overlap_comm=${overlap}`, workers: 2, threads: 1, collective: 'ring', model: 'preset:t5-small-bytes', data: join(tmp, 'sample-cache'),
          stage: 2, perDevice: 4, accum: 1, steps: overlapSteps, dropout: 0, logLevel: 'debug',
          extraSet: ['gradient_checkpointing=true', 'zero_optimization.reduce_bucket_size=auto', `zero_optimization.overlap_comm=${overlap}`],
        },
        tmp,
      );
      const done = stepDoneLines(r.outputDir).filter((d) => d.step >= 1);
      const sum = (f: (d: StepDone) => number) => done.reduce((a, d) => a + f(d), 0);
      rows.push({
        overlap, stepSeconds: r.stepSeconds, stepSecondsEach: r.stepSecondsEach, load1: r.load1, stepDoneLines: done.length,
        computeMsMean: done.length ? sum((d) => d.computeMs) / done.length : Number.NaN,
        commMsMean: done.length ? sum((d) => d.commMs) / done.length : Number.NaN,
        hiddenCommMsMean: done.length ? sum((d) => d.hiddenCommMs) / done.length : Number.NaN,
        hiddenShare: sum((d) => d.commMs) > 0 ? sum((d) => d.hiddenCommMs) / sum((d) => d.commMs) : Number.NaN,
      });
    }
    table(
      ['overlap_comm', 'step s (mean)', 'compute ms', 'reduce-scatter ms', 'hidden ms', 'hidden share', "'step done' lines", 'load before'],
      rows.map((x) => [`${x.overlap}`, fixed(x.stepSeconds, 3), fixed(x.computeMsMean, 0), fixed(x.commMsMean, 0), fixed(x.hiddenCommMsMean, 0), fixed(x.hiddenShare, 3), `${x.stepDoneLines}`, x.load1.toFixed(2)]),
    );
    const ratio = rows[1]!.stepSeconds / rows[0]!.stepSeconds;
    console.log(`   step time overlap / no overlap: ${fixed(ratio, 3)} (< 1: overlap helps); hidden share = sum hiddenCommMs / sum commMs over workers and steps 1..; load now ${loads()}`);
    console.log('   with overlap_comm false the reduce-scatter runs inside the backward and blocks it (computeMs includes it), so its');
    console.log("   'hidden' share reads ~1 by construction: only the overlap_comm=true row's share is time hidden behind compute.");
    out.overlap = { rows, overlapOverNoOverlap: ratio };
  }

  // 7. pko-t5-base peak RSS at stage 2 with the block engine
  if (blockSections.has(7)) {
    console.log('');
    const m = await blockMemoryTerms(tmp, trainLengths, (psi, d) =>
      `7. peak RSS per worker, ${BLOCK_PRESET} (Ψ = ${psi}, 4Ψ = ${MB(4 * psi)} MB), stage 2, gradient_checkpointing, reduce_bucket_size auto (${d}^2), batch 1, shipped sample (train inputs mean ${trainLengths.input.mean} max ${trainLengths.input.max}, labels mean ${trainLengths.label.mean} max ${trainLengths.label.max} tokens), 2 steps`);
    const rows = [];
    for (const world of blockWorlds) {
      const r = await train(pkoRunSpec(tmp, `${BLOCK_PRESET} N=${world} s2`, world, 2, []), tmp);
      const f = stage2Formula(m, world);
      const p = paddedFlatSize(m.psi, world);
      const oldState = 8 * p + (8 * p) / world;
      const oldFormula = m.baselineBytes + oldState + m.workingSetBytes + m.activationsBytes;
      const peak = Math.max(...r.peakRssBytes);
      rows.push({ world, peakMaxBytes: peak, peakMinBytes: Math.min(...r.peakRssBytes), terms: f.terms, formulaBytes: f.bytes, measuredOverFormula: peak / f.bytes, oldStateBytes: oldState, oldFormulaBytes: oldFormula, measuredOverOld: peak / oldFormula, load1: r.load1, stepSeconds: r.stepSeconds });
    }
    console.log('   formula = B + 4Ψ + 4Ψ/N + 8Ψ/N + buckets (2 x 4 x d^2) + W + A; old = B + 8Ψ + 8Ψ/N + W + A (stage 2 before the block engine); Ψ padded to N');
    table(
      ['N', 'peak MB (max, min)', '4Ψ/N MB', '8Ψ/N MB', 'formula MB', 'measured/formula', 'old 8Ψ+8Ψ/N MB', 'old formula MB', 'measured/old', 'load before'],
      rows.map((x) => [
        `${x.world}`, `${MB(x.peakMaxBytes)}, ${MB(x.peakMinBytes)}`, MB(x.terms.gradShard), MB(x.terms.adam), MB(x.formulaBytes), x.measuredOverFormula.toFixed(3),
        MB(x.oldStateBytes), MB(x.oldFormulaBytes), x.measuredOverOld.toFixed(3), x.load1.toFixed(2),
      ]),
    );
    out.pkoT5Base = { ...m, bucketBytes: stage2Formula(m, 1).terms.buckets, rows };
  }

  // 8. the embedded default, whole run
  if (blockSections.has(8)) {
    console.log('');
    console.log('8. the embedded default (kp-coord start --workers 2, no config: eval, save, predict as shipped): worker peak RSS over the whole run');
    const on = await runDefault(tmp, 'default (gradient_checkpointing on)', []);
    const off = await runDefault(tmp, 'default, gradient_checkpointing=false', ['gradient_checkpointing=false']);
    const onPeak = Math.max(...on.peakRssBytes);
    const offPeak = Math.max(...off.peakRssBytes);
    table(
      ['run', 'peak MB (max over workers)', 'peak GiB', 'wall s', 'load before'],
      [on, off].map((r) => [r.key, MB(Math.max(...r.peakRssBytes)), (Math.max(...r.peakRssBytes) / 2 ** 30).toFixed(3), r.wallSeconds.toFixed(1), r.load1.toFixed(2)]),
    );
    console.log(`   default <= 1 GB (1e9 bytes): ${onPeak <= 1e9 ? 'yes' : 'NO'} (${MB(onPeak)} MB); checkpointing off / on: ${(offPeak / onPeak).toFixed(2)}`);
    out.embeddedDefault = { checkpointingOn: on, checkpointingOff: off, onPeakBytes: onPeak, offPeakBytes: offPeak, atMost1GB: onPeak <= 1e9 };
  }

  const loadEnd = loads();
  console.log('');
  console.log(`load average at end: ${loadEnd}; bench took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  console.log(`BENCH_ZERO_BLOCKS ${JSON.stringify({ sections: [...blockSections], ...out, loadEnd })}`);
}

// ---------------------------------------------------------------------------------------------
// Stage-3 sections (--only stage3): 10 bytes sent against the gather schedule's bound, 11
// pko-t5-base peak RSS against B + 16Ψ/N + G + W + A, 12 step time against stage 2.

/** A run's stage-3 settings as given on the command line ('default': not set, DeepSpeed's default). */
interface Stage3Choice {
  readonly prefetch: number | 'auto';
  readonly persistence: number | 'auto';
  readonly reuse: number | 'default';
}

const stage3Label = (c: Stage3Choice) => `reuse ${c.reuse}, prefetch ${c.prefetch}, persistence ${c.persistence}`;

function stage3Set(c: Stage3Choice): string[] {
  return [
    `zero_optimization.stage3_prefetch_bucket_size=${c.prefetch}`,
    `zero_optimization.stage3_param_persistence_threshold=${c.persistence}`,
    ...(c.reuse === 'default' ? [] : [`zero_optimization.stage3_max_reuse_distance=${c.reuse}`]),
  ];
}

/** The stage-3 units of a preset at N ranks ([Note: unit sharding]) and its training pass's trace. */
function stage3Model(preset: string, world: number) {
  const config = parseT5Config(T5_PRESETS[preset], `preset:${preset}`);
  const layout = FlatLayout.fromSpecs(t5ParamSpecs(config));
  const plan = t5BlockPlan(config);
  const units = gradientUnits(plan, layout, t5ModuleOf);
  return { config, units, sharding: new UnitSharding(units, world, 0), train: passTraces(plan, units, layout).train };
}

/**
 * Bytes one rank sends per step at stage 3, from the gather schedule the workers follow: per
 * micro-batch, the all-gathers of the units the schedule fetches (persistent units aside) and one
 * reduce-scatter of every unit; per step, one all-gather of each persistent unit after the
 * optimizer. Each collective on P_u elements sends (N-1)/N x 4 P_u bytes from every rank of the ring.
 */
function stage3BoundBytes(preset: string, world: number, c: Stage3Choice, microBatches: number) {
  const { config, units, sharding, train } = stage3Model(preset, world);
  const d = config.dModel;
  const resolve = (v: number | 'auto' | 'default', key: keyof typeof STAGE3_KEYS) => (v === 'default' ? STAGE3_KEYS[key].default : v === 'auto' ? STAGE3_KEYS[key].auto!(d) : v);
  const threshold = resolve(c.persistence, 'param_persistence_threshold');
  const size = (u: number) => units[u]!.hi - units[u]!.lo;
  const persistent = new Set(units.map((_, u) => u).filter((u) => size(u) < threshold));
  const schedule = gatherSchedule(train, size, persistent, {
    prefetchBucketSize: resolve(c.prefetch, 'prefetch_bucket_size'), maxLiveParameters: STAGE3_KEYS.max_live_parameters.default, maxReuseDistance: resolve(c.reuse, 'max_reuse_distance'),
  });
  const padded = (us: Iterable<number>) => [...us].reduce((n, u) => n + sharding.paddedSize(u), 0);
  const sumPadded = padded(units.keys());
  const gathered = schedule.fetch.reduce((n, f) => n + padded(f.filter((u) => !persistent.has(u))), 0);
  const elements = microBatches * (gathered + sumPadded) + padded(persistent);
  return { sumPadded, persistentUnits: persistent.size, gatheredPerPass: gathered, phases: elements / sumPadded, bytes: (4 * elements * (world - 1)) / world };
}

/** Max over workers and steps of the gatherer's peak live elements ('step done' debug lines). */
const peakLiveParams = (outputDir: string) => Math.max(0, ...stepDoneLines(outputDir).map((d) => d.peakLiveParams));

const SMALL_PRESET = 't5-small-bytes';
const STAGE3_TIMING_STEPS = 5;
/** The issue's expected peak RSS per worker for pko-t5-base at stage 3 (GB). */
const ISSUE_EXPECTED_GB: Readonly<Record<number, number>> = { 2: 3.0, 4: 1.9, 8: 1.35 };

async function mainStage3(tmp: string): Promise<void> {
  const started = performance.now();
  const loadStart = loads();
  console.log(`kp-coord ZeRO bench, stage-3 sections ${[...stage3Sections].sort().join(',')}: node ${process.version}, ${cpus().length} cpus; load average at start: ${loadStart}`);
  const trainLengths = await prepareSample(tmp);
  const out: Record<string, unknown> = { loadStart };
  const small = (key: string, world: number, stage: 2 | 3, steps: number, extraSet: readonly string[]): RunSpec => ({
    key, workers: world, threads: 1, collective: 'ring', model: `preset:${SMALL_PRESET}`, data: join(tmp, 'sample-cache'),
    stage, perDevice: 8 / world, accum: 1, steps, dropout: 0, logLevel: 'debug', extraSet: ['gradient_checkpointing=true', 'zero_optimization.reduce_bucket_size=auto', ...extraSet],
  });

  // 12. step time (first: the timing-sensitive section runs before the long ones)
  if (stage3Sections.has(12)) {
    console.log('');
    console.log(`12. step time stage 3 / stage 2: ${SMALL_PRESET}, shipped sample, N=2 x 1 thread, batch 4, gradient_checkpointing, overlap_comm true, dropout 0, ${STAGE3_TIMING_STEPS} steps (step 0 not counted); stage 3 with persistence auto`);
    const choices: { label: string; stage: 2 | 3; c?: Stage3Choice }[] = [
      { label: 'stage 2 (reduce_bucket_size auto)', stage: 2 },
      { label: 'stage 3, units kept (reuse default), prefetch auto', stage: 3, c: { reuse: 'default', prefetch: 'auto', persistence: 'auto' } },
      { label: 'stage 3, reuse 0, prefetch auto', stage: 3, c: { reuse: 0, prefetch: 'auto', persistence: 'auto' } },
      { label: 'stage 3, reuse 0, prefetch 0', stage: 3, c: { reuse: 0, prefetch: 0, persistence: 'auto' } },
    ];
    const rows = [];
    for (const x of choices) {
      const r = await train(small(`s12 ${x.label}`, 2, x.stage, STAGE3_TIMING_STEPS, ['zero_optimization.overlap_comm=true', ...(x.c ? stage3Set(x.c) : [])]), tmp);
      rows.push({ label: x.label, stepSeconds: r.stepSeconds, stepSecondsEach: r.stepSecondsEach, bytesSentPerWorker: r.bytesSentPerWorker, peakLiveParams: peakLiveParams(r.outputDir), load1: r.load1 });
    }
    const base = rows[0]!.stepSeconds;
    table(
      ['run', 'step s (mean)', 'steps 1.. s', 'sent MB/step', 'peak live elements', '/ stage 2', 'load before'],
      rows.map((x) => [x.label, fixed(x.stepSeconds, 3), x.stepSecondsEach.map((t) => t.toFixed(2)).join(' '), MB(x.bytesSentPerWorker), `${x.peakLiveParams}`, fixed(x.stepSeconds / base, 3), x.load1.toFixed(2)]),
    );
    console.log(`   load now ${loads()}`);
    out.stepTime = { rows: rows.map((x) => ({ ...x, overStage2: x.stepSeconds / base })) };
  }

  // 10. bytes sent against the gather schedule's bound
  if (stage3Sections.has(10)) {
    console.log('');
    console.log(`10. data-plane bytes sent per worker per step / stage-3 bound: ${SMALL_PRESET}, shipped sample, global batch 8 (batch 8/N), 1 micro-batch, gradient_checkpointing, 2 steps (step 1 read)`);
    const every: Stage3Choice = { reuse: 0, prefetch: 'auto', persistence: 0 };
    const cases: { world: number; c: Stage3Choice }[] = [
      ...stage3Worlds.filter((w) => w <= 4).map((world) => ({ world, c: every })),
      { world: 2, c: { ...every, reuse: 'default' } },
      { world: 2, c: { ...every, persistence: 'auto' } },
    ];
    const rows = [];
    for (const { world, c } of cases) {
      const r = await train(small(`s10 N=${world} ${stage3Label(c)}`, world, 3, 2, stage3Set(c)), tmp);
      const b = stage3BoundBytes(SMALL_PRESET, world, c, 1);
      rows.push({ world, ...c, ...b, boundBytes: b.bytes, sentBytes: r.bytesSentPerWorker, ratio: r.bytesSentPerWorker / b.bytes, load1: r.load1 });
    }
    console.log('   bound = (N-1)/N x 4 bytes x (micro-batches x (sum of P_u over the units the gather schedule fetches + sum of all P_u, the reduce-scatter) + sum of the persistent units\' P_u, gathered after the optimizer); phases = that element count / sum P_u');
    table(
      ['N', 'reuse', 'persistence', 'persistent units', 'sum P_u', 'phases', 'bound MB', 'sent MB', 'sent/bound', 'load before'],
      rows.map((x) => [`${x.world}`, `${x.reuse}`, `${x.persistence}`, `${x.persistentUnits}`, `${x.sumPadded}`, x.phases.toFixed(3), MB(x.boundBytes), MB(x.sentBytes), x.ratio.toFixed(4), x.load1.toFixed(2)]),
    );
    console.log(`   load now ${loads()}`);
    out.bytes = rows.map(({ bytes: _b, ...x }) => x);
  }

  // 11. pko-t5-base peak RSS at stage 3
  if (stage3Sections.has(11)) {
    console.log('');
    const c: Stage3Choice = { reuse: 0, prefetch: 'auto', persistence: 'auto' };
    const m = await blockMemoryTerms(tmp, trainLengths, (psi, d) =>
      `11. peak RSS per worker, ${BLOCK_PRESET} (Ψ = ${psi}, 16Ψ = ${MB(16 * psi)} MB, d = ${d}), stage 3 (${stage3Label(c)}), overlap_comm false, gradient_checkpointing, batch 1, shipped sample (train inputs max ${trainLengths.input.max}, labels max ${trainLengths.label.max} tokens), 2 steps; stage 2 the same (section 7's run)`);
    // W1: the working set of one stage-3 worker with everything that does not scale with N (the
    // engine's sessions, the gathered units, a unit's gradient), measured jointly: a run at N=1,
    // whose peak less B, its 16Ψ shard and A. G and W above are each one maximum, taken at different
    // moments (the head's units vs the longest encoder block), so their sum overshoots.
    // One intra-op thread, as every worker of the N >= 2 runs has on 2 cores.
    const one = await train({ ...pkoRunSpec(tmp, `${BLOCK_PRESET} N=1 s3`, 1, 3, ['zero_optimization.overlap_comm=false', ...stage3Set(c)]), threads: 1 }, tmp);
    const shard1 = 16 * stage3Model(BLOCK_PRESET, 1).sharding.shardSize;
    const joint = Math.max(...one.peakRssBytes) - m.baselineBytes - shard1 - m.activationsBytes;
    console.log(`   W1 = N=1 stage-3 run's peak ${MB(Math.max(...one.peakRssBytes))} MB - B - 16Ψ (${MB(shard1)} MB) - A = ${MB(joint)} MB (load ${one.load1.toFixed(2)})`);
    const rows = [];
    for (const world of stage3Worlds) {
      const r = await train(pkoRunSpec(tmp, `${BLOCK_PRESET} N=${world} s3`, world, 3, ['zero_optimization.overlap_comm=false', ...stage3Set(c)]), tmp);
      const { units, sharding } = stage3Model(BLOCK_PRESET, world);
      const live = peakLiveParams(r.outputDir);
      const maxPadded = Math.max(...units.map((_, u) => sharding.paddedSize(u)));
      const terms = { B: m.baselineBytes, shard16: 16 * sharding.shardSize, gathered: 4 * live, unitGradient: 4 * maxPadded * 2, W: m.workingSetBytes, A: m.activationsBytes };
      const formula = Object.values(terms).reduce((a, b) => a + b, 0);
      const jointFormula = m.baselineBytes + terms.shard16 + joint + m.activationsBytes;
      const peak = Math.max(...r.peakRssBytes);
      // Stage 2 of the same shape: run where it fits beside the others (N <= 4), else its formula.
      const s2 = world <= 4 ? await train(pkoRunSpec(tmp, `${BLOCK_PRESET} N=${world} s2`, world, 2, []), tmp) : null;
      const s2Peak = s2 ? Math.max(...s2.peakRssBytes) : null;
      rows.push({
        world, peakMaxBytes: peak, peakMinBytes: Math.min(...r.peakRssBytes), peakLiveParams: live, maxPaddedUnit: maxPadded, terms, formulaBytes: formula, measuredOverFormula: peak / formula,
        jointFormulaBytes: jointFormula, measuredOverJoint: peak / jointFormula,
        stage2PeakBytes: s2Peak, stage2FormulaBytes: stage2Formula(m, world).bytes, stage3OverStage2: s2Peak ? peak / s2Peak : null, issueExpectedGB: ISSUE_EXPECTED_GB[world] ?? null,
        load1: r.load1, stage2Load1: s2?.load1 ?? null, stepSeconds: r.stepSeconds,
      });
    }
    console.log('   formula = B + 16Ψ/N (the stage-3 shard: params, gradient, Adam m and v, UnitSharding.shardSize x 16 bytes) + G + W + A;');
    console.log('   G = 4 x peak live elements (gatherer, max over workers) + 4 x largest P_u x 2 (one unit\'s gradient and its padded reduce-scatter buffer)');
    console.log('   joint formula = B + 16Ψ/N + W1 + A (W1 from the N=1 run: the working set that does not shrink with N, measured as one)');
    table(
      ['N', 'peak MB (max, min)', '16Ψ/N MB', 'peak live el.', 'G MB', 'formula MB', 'measured/formula', 'joint MB', 'measured/joint', 'issue GB', 'stage 2 peak MB', 'stage 2 formula MB', 'stage3/stage2', 'load before (s3, s2)'],
      rows.map((x) => [
        `${x.world}`, `${MB(x.peakMaxBytes)}, ${MB(x.peakMinBytes)}`, MB(x.terms.shard16), `${x.peakLiveParams}`, MB(x.terms.gathered + x.terms.unitGradient), MB(x.formulaBytes), x.measuredOverFormula.toFixed(3),
        MB(x.jointFormulaBytes), x.measuredOverJoint.toFixed(3),
        x.issueExpectedGB === null ? '-' : x.issueExpectedGB.toFixed(2), x.stage2PeakBytes === null ? 'not run' : MB(x.stage2PeakBytes), MB(x.stage2FormulaBytes),
        x.stage3OverStage2 === null ? `${fixed(x.peakMaxBytes / x.stage2FormulaBytes, 3)} (formula)` : x.stage3OverStage2.toFixed(3), `${x.load1.toFixed(2)}, ${x.stage2Load1?.toFixed(2) ?? '-'}`,
      ]),
    );
    console.log(`   load now ${loads()}`);
    out.pkoT5BaseStage3 = { ...m, settings: c, n1PeakBytes: Math.max(...one.peakRssBytes), jointWorkingSetBytes: joint, rows };
  }

  const loadEnd = loads();
  console.log('');
  console.log(`load average at end: ${loadEnd}; bench took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  console.log(`BENCH_ZERO_STAGE3 ${JSON.stringify({ sections: [...stage3Sections], worlds: stage3Worlds, ...out, loadEnd })}`);
}

const tmp = mkdtempSync(join(tmpdir(), 'kp-coord-bench-zero-'));
const main = args.only === 'blocks' ? mainBlocks : args.only === 'stage3' ? mainStage3 : mainAll;
const interrupted = () => {
  stopChild();
  process.exit(130);
};
process.once('SIGINT', interrupted);
process.once('SIGTERM', interrupted);
main(tmp)
  .then(() => {
    if (!args.keep) rmSync(tmp, { recursive: true, force: true });
    else console.error(`kept ${tmp}`);
  })
  .catch((e: unknown) => {
    process.stderr.write(`zero bench failed: ${e instanceof Error ? e.stack : String(e)}\nrun directories and worker logs kept in ${tmp}/runs\n`);
    process.exit(1);
  });
