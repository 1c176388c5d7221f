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
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { EMBEDDED_SAMPLE_FILE } from '../shared/config/run-config.js';
import { InputFileError, KpCoordError } from '../shared/errors.js';
import { T5_PRESETS } from '../shared/models/presets.js';
import { parseT5Config } from '../shared/models/t5-config.js';
import { t5ParamSpecs } from '../shared/models/t5-params.js';
import { paddedFlatSize } from '../shared/sharding/flat-shard.js';
import { FlatLayout } from '../shared/weights/flat-layout.js';
import { RingProcs, WorkerProc } from '../test/helpers/collective-procs.js';
import { measureStepMemory } from './engine-memory.js';

const MiB = 1024 * 1024;
const CLI = fileURLToPath(new URL('../coordinator/cli/main.js', import.meta.url));
const RUN_TIMEOUT_MS = 15 * 60_000;
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
  process.stderr.write(`${message}\nusage: node dist/bench/zero.js [--steps 4] [--worlds 2,4] [--keep] [--only blocks [--blocks 7,8,9] [--blocks-worlds 1,2,4] [--overlap-steps 4]]\n`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      steps: { type: 'string', default: '4' }, worlds: { type: 'string', default: '2,4' }, keep: { type: 'boolean', default: false },
      only: { type: 'string' }, blocks: { type: 'string', default: '7,8,9' }, 'blocks-worlds': { type: 'string', default: '1,2,4' }, 'overlap-steps': { type: 'string', default: '4' },
    },
  }).values;
} catch (e) {
  usage(e instanceof Error ? e.message : String(e));
}
const steps = Number(args.steps);
if (!Number.isSafeInteger(steps) || steps < 2) usage(`--steps: need an integer >= 2 (step 0 is not timed), got ${args.steps}`);
const worlds = args.worlds.split(',').map(Number);
if (worlds.some((w) => !Number.isSafeInteger(w) || w < 2)) usage(`--worlds: comma-separated integers >= 2, got ${args.worlds}`);
if (args.only !== undefined && args.only !== 'blocks') usage(`--only: 'blocks' is the one choice, got ${args.only}`);
const blockSections = new Set(args.blocks.split(',').map(Number));
if ([...blockSections].some((x) => x !== 7 && x !== 8 && x !== 9)) usage(`--blocks: a comma-separated subset of 7,8,9, got ${args.blocks}`);
const blockWorlds = args['blocks-worlds'].split(',').map(Number);
if (blockWorlds.some((w) => !Number.isSafeInteger(w) || w < 1)) usage(`--blocks-worlds: comma-separated integers >= 1, got ${args['blocks-worlds']}`);
const overlapSteps = Number(args['overlap-steps']);
if (!Number.isSafeInteger(overlapSteps) || overlapSteps < 2) usage(`--overlap-steps: need an integer >= 2, got ${args['overlap-steps']}`);

const load1 = () => loadavg()[0]!;
const loads = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const MB = (bytes: number) => (bytes / 1e6).toFixed(1);
const fixed = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

// ---------------------------------------------------------------------------------------------
// Child processes

let active: ChildProcess | null = null;

/** Run the kp-coord CLI to completion; a non-zero exit rejects with the tail of its stderr. */
function runCli(cliArgs: readonly string[], label: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) => {
    // The workers inherit the CLI's environment (coordinator/local-workers.ts), KPCOORD_LOG_LEVEL included.
    const child = spawn(process.execPath, [CLI, ...cliArgs], { stdio: ['ignore', 'pipe', 'pipe'], env });
    active = child;
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    // SIGTERM lets `kp-coord start` stop its workers; SIGKILL if it does not exit.
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    }, RUN_TIMEOUT_MS);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      active = null;
      if (code === 0) resolve(stdout);
      else reject(new KpCoordError(`${label}: kp-coord ${cliArgs[0]} exited with ${signal ?? `code ${code}`}:\n${stderr}`));
    });
  });
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
  readonly stage: 0 | 1 | 2;
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
const StepDoneSchema = z.object({ msg: z.literal('step done'), step: z.number(), computeMs: z.number(), commMs: z.number(), hiddenCommMs: z.number() });
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

async function mainBlocks(tmp: string): Promise<void> {
  const started = performance.now();
  const loadStart = loads();
  console.log(`kp-coord ZeRO bench, block-engine sections ${[...blockSections].sort().join(',')}: node ${process.version}, ${cpus().length} cpus; load average at start: ${loadStart}`);
  await runCli(['data', 'prepare', '--input', EMBEDDED_SAMPLE_FILE, '--preset', 'embedded-sample', '--out', join(tmp, 'sample-cache')], 'prepare sample data');
  const LengthStats = z.object({ mean: z.number(), p95: z.number(), max: z.number() });
  const report = z
    .object({ lengths: z.object({ train: z.object({ input: LengthStats, label: LengthStats }) }) })
    .parse(JSON.parse(readFileSync(join(tmp, 'sample-cache', 'report.json'), 'utf8')));
  const trainLengths = report.lengths.train;
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
    const config = parseT5Config(T5_PRESETS[BLOCK_PRESET], `preset:${BLOCK_PRESET}`);
    const psi = FlatLayout.fromSpecs(t5ParamSpecs(config)).totalSize;
    const d = config.dModel;
    // The longest training input and label of the sample: an upper bound for the two samples a rank draws.
    const src = trainLengths.input.max;
    const tgt = trainLengths.label.max;
    console.log(`7. peak RSS per worker, ${BLOCK_PRESET} (Ψ = ${psi}, 4Ψ = ${MB(4 * psi)} MB), stage 2, gradient_checkpointing, reduce_bucket_size auto (${d}^2), batch 1, shipped sample (train inputs mean ${trainLengths.input.mean} max ${src}, labels mean ${trainLengths.label.mean} max ${tgt} tokens), 2 steps`);
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
    const bucketBytes = 2 * 4 * d * d; // one bucket filling, one in flight
    const rows = [];
    for (const world of blockWorlds) {
      const r = await train(
        {
          key: `${BLOCK_PRESET} N=${world} s2`, workers: world, threads: Math.max(1, Math.floor(cpus().length / world)), collective: 'ring', model: `preset:${BLOCK_PRESET}`, data: join(tmp, 'sample-cache'),
          stage: 2, perDevice: 1, accum: 1, steps: 2, dropout: 0, extraSet: ['gradient_checkpointing=true', 'zero_optimization.reduce_bucket_size=auto'],
        },
        tmp,
      );
      const p = paddedFlatSize(psi, world);
      const terms = { B: baseline, params: 4 * p, gradShard: (4 * p) / world, adam: (8 * p) / world, buckets: bucketBytes, W: working, A: activations };
      const formula = Object.values(terms).reduce((a, b) => a + b, 0);
      const oldState = 8 * p + (8 * p) / world;
      const oldFormula = baseline + oldState + working + activations;
      const peak = Math.max(...r.peakRssBytes);
      rows.push({ world, peakMaxBytes: peak, peakMinBytes: Math.min(...r.peakRssBytes), terms, formulaBytes: formula, measuredOverFormula: peak / formula, oldStateBytes: oldState, oldFormulaBytes: oldFormula, measuredOverOld: peak / oldFormula, load1: r.load1, stepSeconds: r.stepSeconds });
    }
    console.log('   formula = B + 4Ψ + 4Ψ/N + 8Ψ/N + buckets (2 x 4 x d^2) + W + A; old = B + 8Ψ + 8Ψ/N + W + A (stage 2 before the block engine); Ψ padded to N');
    table(
      ['N', 'peak MB (max, min)', '4Ψ/N MB', '8Ψ/N MB', 'formula MB', 'measured/formula', 'old 8Ψ+8Ψ/N MB', 'old formula MB', 'measured/old', 'load before'],
      rows.map((x) => [
        `${x.world}`, `${MB(x.peakMaxBytes)}, ${MB(x.peakMinBytes)}`, MB(x.terms.gradShard), MB(x.terms.adam), MB(x.formulaBytes), x.measuredOverFormula.toFixed(3),
        MB(x.oldStateBytes), MB(x.oldFormulaBytes), x.measuredOverOld.toFixed(3), x.load1.toFixed(2),
      ]),
    );
    out.pkoT5Base = { psi, srcLen: src, tgtLen: tgt, baselineBytes: baseline, activationsBytes: activations, workingSetBytes: working, probe, bucketBytes, rows };
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

const tmp = mkdtempSync(join(tmpdir(), 'kp-coord-bench-zero-'));
const main = args.only === 'blocks' ? mainBlocks : mainAll;
const stopChild = () => {
  active?.kill('SIGTERM');
  process.exit(130);
};
process.once('SIGINT', stopChild);
process.once('SIGTERM', stopChild);
main(tmp)
  .then(() => {
    if (!args.keep) rmSync(tmp, { recursive: true, force: true });
    else console.error(`kept ${tmp}`);
  })
  .catch((e: unknown) => {
    process.stderr.write(`zero bench failed: ${e instanceof Error ? e.stack : String(e)}\nrun directories and worker logs kept in ${tmp}/runs\n`);
    process.exit(1);
  });
