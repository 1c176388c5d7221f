import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import type { Seq2SeqBatch } from '../shared/models/batch.js';
import { T5_PRESETS } from '../shared/models/presets.js';
import { parseT5Config, type T5Config } from '../shared/models/t5-config.js';
import { buildT5Graph } from '../shared/models/t5-graph.js';
import { t5ParamSpecs, numel } from '../shared/models/t5-params.js';
import { Graph } from '../shared/onnx/graph.js';
import { matmul } from '../shared/onnx/ops.js';
import { serializeGraph } from '../shared/onnx/serialize.js';
import { rngStream } from '../shared/random.js';
import { FlatLayout } from '../shared/weights/flat-layout.js';
import { initT5Flat } from '../shared/weights/init.js';
import { fillDropoutMask, type DropoutKey } from '../worker/engine/dropout-masks.js';
import { EngineOptionsSchema, sessionOptions } from '../shared/onnx/session-options.js';
import { T5Engine } from '../worker/engine/t5-engine.js';

// `npm run bench:engine [-- --skip-base] [--runs N] [--threads N]`: the T5 engine's forward and
// forward+backward times, their ratio (ideal about 3), and the achieved GFLOP/s against one ORT
// MatMul measured in the same process as this machine's compute yardstick; then peak RSS. A tiny
// config runs first (seconds), pko-t5-base at 512/64 tokens, batch 1 second (a few minutes on 2
// cores). The last line is `BENCH_ENGINE {json}` for CI logs.

const YARDSTICK_N = 1024;
const SEED = 20261128;
/** Key of the stream the random batches draw from (any tuple distinct from init and dropout). */
const BATCH_STREAM_KEY = 0xbe7c;

interface Case {
  readonly name: string;
  readonly preset: string;
  readonly srcLen: number;
  readonly tgtLen: number;
  readonly warmup: number;
  readonly runs: number;
  readonly dropoutRuns: number;
}

const CASES: readonly Case[] = [
  { name: 't5-tiny 64/16', preset: 't5-tiny', srcLen: 64, tgtLen: 16, warmup: 3, runs: 20, dropoutRuns: 10 },
  { name: 'pko-t5-base 512/64', preset: 'pko-t5-base', srcLen: 512, tgtLen: 64, warmup: 2, runs: 5, dropoutRuns: 3 },
];

interface Timing {
  readonly medianMs: number;
  readonly minMs: number;
}

function timing(ms: readonly number[]): Timing {
  const sorted = [...ms].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const medianMs = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { medianMs, minMs: sorted[0]! };
}

/** Warm up (ORT's memory arena grows during the first runs), then time each of `runs` calls. */
async function timeRuns(warmup: number, runs: number, fn: () => Promise<unknown>): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await fn();
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  return timing(ms);
}

async function timeOnce<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

// ---- yardstick -----------------------------------------------------------------------------

interface Yardstick {
  readonly allowSpinning: boolean;
  readonly ms: Timing;
  /** 2 n^3 / median time. */
  readonly gflops: number;
}

/** Y = A @ B, n x n float32, built with the project's DSL and run with the engine's session options. */
async function matmulYardstick(threads: number, allowSpinning: boolean): Promise<Yardstick> {
  const n = YARDSTICK_N;
  const g = new Graph('matmul_yardstick');
  g.output('y', matmul(g.input('a', 'float32', [n, n]), g.input('b', 'float32', [n, n])));
  const session = await ort.InferenceSession.create(
    serializeGraph(g),
    sessionOptions(EngineOptionsSchema.parse({ intraOpThreads: threads, allowSpinning })),
  );
  const data = (key: number) => {
    const x = new Float32Array(n * n);
    rngStream(SEED, BATCH_STREAM_KEY, key).fillUniform(x, -1, 1);
    return new ort.Tensor('float32', x, [n, n]);
  };
  const feeds = { a: data(1), b: data(2) };
  const ms = await timeRuns(3, 10, () => session.run(feeds));
  await session.release();
  return { allowSpinning, ms, gflops: (2 * n ** 3) / (ms.medianMs * 1e6) };
}

// ---- model FLOPs ---------------------------------------------------------------------------

/**
 * Matmul FLOPs of one forward pass (2 m n k per [m,k]x[k,n] product; elementwise ops, norms,
 * softmax and the loss are left out, they are a few percent). With B batch, S source and T target
 * tokens, d = d_model, a = heads * d_kv, f = d_ff, V = vocab, g = 3 for gated FFNs (wi_0, wi_1,
 * wo) and 2 otherwise:
 *   encoder layer:  2BS(4da)  [q,k,v,o]  + 2B(2 S^2 a)  [QK^T, PV]  + 2BS(g d f)
 *   decoder layer:  2BT(4da)  [self]     + 2B(2 T^2 a)
 *                 + 2BT(2da) [cross q,o] + 2BS(2da) [cross k,v, from the encoder output]
 *                 + 2B(2 T S a) [cross QK^T, PV] + 2BT(g d f)
 *   LM head:        2BT dV
 * (One pko-t5-base encoder layer at S = 512 is 8.05 GFLOP, as DESIGN.md's spike counted.) The
 * backward pass costs about twice the forward (a gradient for each matmul operand), so a training
 * step is counted as 3 x forward.
 */
function t5ForwardFlops(c: T5Config, batch: number, src: number, tgt: number): number {
  const d = c.dModel;
  const a = c.numHeads * c.dKv;
  const ffn = (c.gated ? 3 : 2) * d * c.dFf;
  const encoderLayer = 2 * batch * (src * 4 * d * a + 2 * src * src * a + src * ffn);
  const decoderLayer = 2 * batch * (tgt * 4 * d * a + 2 * tgt * tgt * a + tgt * 2 * d * a + src * 2 * d * a + 2 * tgt * src * a + tgt * ffn);
  const head = 2 * batch * tgt * d * c.vocabSize;
  return c.numEncoderLayers * encoderLayer + c.numDecoderLayers * decoderLayer + head;
}

// ---- one model shape -----------------------------------------------------------------------

/** Batch 1 of random in-vocabulary ids (above pad 0, eos 1, unk 2), each row ending in eos. */
function randomBatch(c: T5Config, srcLen: number, tgtLen: number): Seq2SeqBatch {
  const stream = rngStream(SEED, BATCH_STREAM_KEY, 0);
  const ids = (len: number) => {
    const out = new Int32Array(len);
    for (let i = 0; i < len - 1; i++) out[i] = 3 + Math.floor(stream.uniform() * (c.vocabSize - 3));
    out[len - 1] = c.eosTokenId;
    return out;
  };
  return { batchSize: 1, srcLen, tgtLen, inputIds: ids(srcLen), attentionMask: new Int32Array(srcLen).fill(1), labels: ids(tgtLen) };
}

/** The JS side of dropout alone: every mask of one training step, as the engine fills them. */
async function timeDropoutMasks(c: T5Config, batch: Seq2SeqBatch, key: DropoutKey, runs: number): Promise<{ ms: Timing; bytes: number }> {
  const { dropoutSites } = buildT5Graph(c, { dtype: 'float32', dropout: true, gradients: false });
  const dims: Record<string, number> = { batch: batch.batchSize, src_len: batch.srcLen, tgt_len: batch.tgtLen };
  const shapes = dropoutSites.map((s) => s.shape.map((d) => (typeof d === 'number' ? d : dims[d]!)));
  const bytes = shapes.reduce((n, s) => n + numel(s), 0);
  // Three warm-up fills: the first calls run before V8 has optimised the loop.
  const ms = await timeRuns(3, runs, async () => {
    shapes.forEach((shape, i) => fillDropoutMask(new Uint8Array(numel(shape)), shape, c.dropoutRate, i, key));
  });
  return { ms, bytes };
}

interface CaseResult {
  readonly name: string;
  readonly params: number;
  readonly initMs: number;
  readonly createMs: number;
  readonly forward: Timing;
  readonly forwardBackward: Timing;
  /** Building one call's input tensors in JS. */
  readonly feedsMs: Timing;
  /** forwardBackward with ORT-allocated gradient outputs copied into the flat array. */
  readonly copiedForwardBackward: Timing;
  /** copied / bound, medians (> 1: binding outputs to the flat array saves that much). */
  readonly copiedOverBound: number;
  /** forwardBackward / forward, medians. */
  readonly ratio: number;
  /** The same of the fastest runs: closer to the machine's capability when other processes interfere. */
  readonly ratioOfMins: number;
  readonly lossPerToken: number;
  /** |loss(F) - loss(F+B)| / |loss(F)|: the two sessions compute the same loss. */
  readonly lossRelDiff: number;
  readonly forwardGflop: number;
  readonly achievedGflops: number;
  readonly achievedGflopsBest: number;
  /** The MatMul yardstick measured just before this case (GFLOP/s). */
  readonly yardstickGflops: number;
  readonly vsYardstick: number;
  readonly dropoutCreateMs: number;
  readonly dropoutForwardBackward: Timing;
  readonly dropoutOverhead: number;
  readonly maskMs: Timing;
  readonly maskMiB: number;
  /** Peak RSS so far after: param init, session creation, forward, F+B, the dropout runs. */
  readonly peakRssMiB: PeakRss;
  readonly rssMiB: number;
}

interface PeakRss {
  readonly init: number;
  readonly sessions: number;
  readonly forward: number;
  readonly forwardBackward: number;
  readonly dropout: number;
}

const MiB = 1024 * 1024;
/** The process's peak resident set so far (getrusage maxrss, which Node reports in KiB). */
const peakRssMiB = () => (process.resourceUsage().maxRSS * 1024) / MiB;

async function benchCase(k: Case, threads: number, progress: (msg: string) => void): Promise<CaseResult> {
  // Measured right before the model so both see the same machine (other processes may share it).
  const yardstick = await matmulYardstick(threads, false);
  const config = parseT5Config(T5_PRESETS[k.preset], `preset:${k.preset}`);
  const layout = FlatLayout.fromSpecs(t5ParamSpecs(config));
  const init = await timeOnce(async () => initT5Flat(config, layout, SEED));
  const params = init.value;
  const grad = new Float32Array(layout.totalSize);
  const batch = randomBatch(config, k.srcLen, k.tgtLen);
  const afterInit = peakRssMiB();
  progress(`${k.name}: ${(layout.totalSize / 1e6).toFixed(1)} M params initialised in ${(init.ms / 1000).toFixed(1)} s; creating sessions`);

  const created = await timeOnce(() => T5Engine.create(config, { dtype: 'float32', dropout: false, intraOpThreads: threads }));
  const engine = created.value;
  const afterSessions = peakRssMiB();
  progress(`${k.name}: sessions in ${(created.ms / 1000).toFixed(1)} s; timing forward`);
  const forward = await timeRuns(k.warmup, k.runs, () => engine.forwardLoss(params, batch));
  const afterForward = peakRssMiB();
  progress(`${k.name}: forward ${forward.medianMs.toFixed(1)} ms; timing forward+backward`);
  const forwardBackward = await timeRuns(k.warmup, k.runs, () => engine.forwardBackward(params, grad, batch));
  const lossF = await engine.forwardLoss(params, batch);
  const lossFB = await engine.forwardBackward(params, grad, batch);
  const afterForwardBackward = peakRssMiB();
  // The JS side of a call: parameter views, data tensors (no copies of parameters).
  const feeds = await timeRuns(3, 20, async () => engine.buildFeeds(params, batch));
  await engine.release();
  globalThis.gc?.();

  // Gradients bound to the flat array (ORT writes in place) vs ORT-allocated outputs copied in JS.
  progress(`${k.name}: timing forward+backward with ORT-allocated gradients copied into the flat array`);
  const copiedEngine = await T5Engine.create(config, { dtype: 'float32', dropout: false, intraOpThreads: threads, gradientOutputs: 'copied' });
  const copiedForwardBackward = await timeRuns(k.warmup, k.runs, () => copiedEngine.forwardBackward(params, grad, batch));
  await copiedEngine.release();
  globalThis.gc?.();

  // Dropout on: another training graph (mask inputs and their Mul/Cast nodes), masks made in JS.
  progress(`${k.name}: forward+backward ${forwardBackward.medianMs.toFixed(1)} ms; timing with dropout on`);
  const key: DropoutKey = { seed: SEED, step: 0, sampleIndices: [0] };
  const createdDropout = await timeOnce(() => T5Engine.create(config, { dtype: 'float32', dropout: true, intraOpThreads: threads }));
  const dropoutEngine = createdDropout.value;
  const dropoutForwardBackward = await timeRuns(1, k.dropoutRuns, () => dropoutEngine.forwardBackward(params, grad, batch, key));
  await dropoutEngine.release();
  globalThis.gc?.();
  const masks = await timeDropoutMasks(config, batch, key, k.dropoutRuns);

  const flops = t5ForwardFlops(config, batch.batchSize, batch.srcLen, batch.tgtLen);
  const achievedGflops = (3 * flops) / (forwardBackward.medianMs * 1e6);
  return {
    name: k.name,
    params: layout.totalSize,
    initMs: init.ms,
    createMs: created.ms,
    forward,
    forwardBackward,
    ratio: forwardBackward.medianMs / forward.medianMs,
    feedsMs: feeds,
    copiedForwardBackward,
    copiedOverBound: copiedForwardBackward.medianMs / forwardBackward.medianMs,
    ratioOfMins: forwardBackward.minMs / forward.minMs,
    lossPerToken: lossF.lossSum / lossF.tokenCount,
    lossRelDiff: Math.abs(lossF.lossSum - lossFB.lossSum) / Math.abs(lossF.lossSum),
    forwardGflop: flops / 1e9,
    achievedGflops,
    achievedGflopsBest: (3 * flops) / (forwardBackward.minMs * 1e6),
    yardstickGflops: yardstick.gflops,
    vsYardstick: achievedGflops / yardstick.gflops,
    dropoutCreateMs: createdDropout.ms,
    dropoutForwardBackward,
    dropoutOverhead: dropoutForwardBackward.medianMs / forwardBackward.medianMs,
    maskMs: masks.ms,
    maskMiB: masks.bytes / MiB,
    peakRssMiB: { init: afterInit, sessions: afterSessions, forward: afterForward, forwardBackward: afterForwardBackward, dropout: peakRssMiB() },
    rssMiB: process.memoryUsage.rss() / MiB,
  };
}

// ---- report --------------------------------------------------------------------------------

function printTable(results: readonly CaseResult[]): void {
  const f = (x: number, digits = 1) => x.toFixed(digits);
  const t = (x: Timing) => `${f(x.medianMs)} / ${f(x.minMs)}`;
  const rows: [string, (r: CaseResult) => string][] = [
    ['parameters (M)', (r) => f(r.params / 1e6, 2)],
    ['param init (ms)', (r) => f(r.initMs, 0)],
    ['session creation, F+B and F (ms)', (r) => f(r.createMs, 0)],
    ['forward (ms, median / min)', (r) => t(r.forward)],
    ['forward+backward (ms, median / min)', (r) => t(r.forwardBackward)],
    ['JS feeds per call (ms, median / min)', (r) => `${r.feedsMs.medianMs.toFixed(2)} / ${r.feedsMs.minMs.toFixed(2)}`],
    ['F+B, gradients copied from ORT (ms)', (r) => t(r.copiedForwardBackward)],
    ['  copied / bound in place', (r) => f(r.copiedOverBound, 3)],
    ['(F+B) / F, medians (ideal about 3)', (r) => f(r.ratio, 2)],
    ['(F+B) / F, fastest runs', (r) => f(r.ratioOfMins, 2)],
    ['loss per token (random init)', (r) => f(r.lossPerToken, 3)],
    ['|loss F - loss F+B| / |loss F|', (r) => r.lossRelDiff.toExponential(1)],
    ['forward matmul GFLOP (analytic)', (r) => f(r.forwardGflop, 3)],
    ['achieved GFLOP/s (3 x fwd / F+B median)', (r) => f(r.achievedGflops)],
    ['  same for the fastest F+B run', (r) => f(r.achievedGflopsBest)],
    ['MatMul yardstick just before (GFLOP/s)', (r) => f(r.yardstickGflops)],
    ['achieved / yardstick', (r) => f(r.vsYardstick, 2)],
    ['session creation, dropout on (ms)', (r) => f(r.dropoutCreateMs, 0)],
    ['F+B dropout on (ms, median / min)', (r) => t(r.dropoutForwardBackward)],
    ['dropout on / off (F+B)', (r) => f(r.dropoutOverhead, 2)],
    ['of which JS mask fill (ms, median / min)', (r) => `${t(r.maskMs)} (${f(r.maskMiB)} MiB)`],
    ['peak RSS so far (MiB), after: init', (r) => f(r.peakRssMiB.init, 0)],
    ['  sessions created', (r) => f(r.peakRssMiB.sessions, 0)],
    ['  forward runs', (r) => f(r.peakRssMiB.forward, 0)],
    ['  forward+backward runs', (r) => f(r.peakRssMiB.forwardBackward, 0)],
    ['  dropout-on session and runs', (r) => f(r.peakRssMiB.dropout, 0)],
    ['RSS after (MiB)', (r) => f(r.rssMiB, 0)],
  ];
  const cells = rows.map(([label, cell]) => [label, ...results.map(cell)]);
  const header = ['', ...results.map((r) => r.name)];
  const widths = header.map((_, i) => Math.max(...[header, ...cells].map((row) => row[i]!.length)));
  const line = (row: readonly string[]) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of cells) console.log(line(row));
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        'skip-base': { type: 'boolean', default: false },
        runs: { type: 'string' },
        threads: { type: 'string', default: '2' },
      },
      strict: true,
    }).values;
  } catch (e) {
    console.error(`${(e as Error).message}\nusage: node --expose-gc dist/bench/engine.js [--skip-base] [--runs N] [--threads N]`);
    return 2;
  }
  const positive = (name: string, s: string | undefined): number | undefined => {
    if (s === undefined) return undefined;
    const n = Number(s);
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`--${name} must be a positive integer, got '${s}'`);
    return n;
  };
  let threads: number;
  let runs: number | undefined;
  try {
    threads = positive('threads', args.threads)!;
    runs = positive('runs', args.runs);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  const progress = (msg: string) => console.error(`[bench] ${msg}`);

  const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
  console.log(`kp-coord engine bench: node ${process.version}, onnxruntime-node ${ort.env.versions.node}, ${cpus().length} cpus, ${threads} intra-op threads, float32, batch 1`);
  console.log(`load average at start: ${load()} (other busy processes make every number below worse)`);
  if (!globalThis.gc) progress('run with --expose-gc for memory released between configs');

  // The engine's own session options (spinning off); spinning on for comparison with DESIGN.md.
  const yardStart = await matmulYardstick(threads, false);
  const yardSpin = await matmulYardstick(threads, true);
  progress(`yardstick ${yardStart.gflops.toFixed(1)} GFLOP/s (spinning on: ${yardSpin.gflops.toFixed(1)})`);

  const cases = CASES.filter((c) => !(args['skip-base'] && c.preset === 'pko-t5-base')).map((c) => (runs ? { ...c, runs } : c));
  const results: CaseResult[] = [];
  for (const c of cases) results.push(await benchCase(c, threads, progress));
  // Measured again at the end: a large drift means the machine was busy and the run is suspect.
  const yardEnd = await matmulYardstick(threads, false);

  const y = (r: Yardstick) => `${r.gflops.toFixed(1)} GFLOP/s (median ${r.ms.medianMs.toFixed(2)} ms, min ${r.ms.minMs.toFixed(2)} ms)`;
  console.log(`yardstick: ORT MatMul f32 ${YARDSTICK_N}^3, ${threads} threads, engine options (spinning off): ${y(yardStart)}`);
  console.log(`           same with spinning on: ${y(yardSpin)}`);
  console.log(`           spinning off again at the end: ${y(yardEnd)}; load average at end: ${load()}`);
  console.log('');
  printTable(results);
  console.log('');
  console.log(
    `BENCH_ENGINE ${JSON.stringify({
      threads,
      yardstickGflops: yardStart.gflops,
      yardstickSpinningGflops: yardSpin.gflops,
      yardstickEndGflops: yardEnd.gflops,
      loadAverageEnd: loadavg(),
      cases: results,
    })}`,
  );
  return 0;
}

process.exitCode = await main();
