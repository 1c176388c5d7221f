import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import type { Seq2SeqBatch } from '../shared/models/batch.js';
import { T5_PRESETS } from '../shared/models/presets.js';
import { parseT5Config, type T5Config } from '../shared/models/t5-config.js';
import { buildT5Graph } from '../shared/models/t5-graph.js';
import { t5ParamSpecs, numel } from '../shared/models/t5-params.js';
import { FlatLayout } from '../shared/weights/flat-layout.js';
import { initT5Flat } from '../shared/weights/init.js';
import { fillDropoutMask, type DropoutKey } from '../worker/engine/dropout-masks.js';
import { T5Engine } from '../worker/engine/t5-engine.js';
import { positiveOption, type Timing } from './bench-stats.js';
import { matmulYardstick, timeInterleaved, timeRuns, YARDSTICK_N, type Yardstick } from './engine-timing.js';
import { measureStepMemory, type ProbeResult } from './engine-memory.js';
import { logitStats, type LogitStats } from './logit-stats.js';
import { printProfile, takeProfile, type KernelProfile } from './ort-profile.js';
import { randomBatch } from './random-batch.js';
import { savedActivations, type SavedActivations } from './saved-activations.js';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { runNode } from './child-run.js';

// `npm run bench:engine [-- --skip-base] [--skip-bart] [--case NAME-PART] [--runs N] [--threads N]`: the T5 engine's forward and
// forward+backward times, their ratio (ideal about 3), and the achieved GFLOP/s against one ORT
// MatMul measured in the same process as this machine's compute yardstick; the share of subnormal
// floats in the logits' gradient; onnxruntime's own profile of the F+B session (kernel time by
// op type, the 10 slowest nodes); peak RSS of forward and F+B in child processes, with ORT's
// memory arena and memory pattern on and off. Cases: t5-tiny (seconds), t5-small-bytes at the
// embedded default's shape (835/64 tokens, batch 4), pko-t5-base 512/64 batch 1 with HF's init
// (logits spread over hundreds: loss ~114 per token) and with the head scaled by d_model^-0.5
// (logits of std ~1: loss near ln(vocab), as a trained model starts). --skip-base leaves out
// the pko-t5-base cases (minutes on 2 cores). Then one line per model: the cases above and BART
// (kobart-news 512/64 on the block engine, timed by bench/bart-engine --time in a child with this
// process's environment; --skip-bart leaves it out). The last line is `BENCH_ENGINE {json}`.

const SEED = 20261128;

interface Case {
  readonly name: string;
  readonly preset: string;
  readonly batch: number;
  readonly srcLen: number;
  readonly tgtLen: number;
  readonly warmup: number;
  readonly runs: number;
  readonly dropoutRuns: number;
  /** Multiply lm_head by this after init (1: HF's init). */
  readonly headScale: number;
  /** Also time ORT-allocated gradients, dropout on and the memory settings (the first case of a shape). */
  readonly full: boolean;
  /** Issue-12 targets printed for this case. */
  readonly targets: boolean;
}

const CASES: readonly Case[] = [
  { name: 't5-tiny 64/16', preset: 't5-tiny', batch: 1, srcLen: 64, tgtLen: 16, warmup: 3, runs: 20, dropoutRuns: 10, headScale: 1, full: true, targets: false },
  { name: 't5-small-bytes 835/64 x4', preset: 't5-small-bytes', batch: 4, srcLen: 835, tgtLen: 64, warmup: 2, runs: 8, dropoutRuns: 4, headScale: 1, full: true, targets: false },
  { name: 'pko-t5-base 512/64', preset: 'pko-t5-base', batch: 1, srcLen: 512, tgtLen: 64, warmup: 2, runs: 5, dropoutRuns: 3, headScale: 1, full: true, targets: true },
  { name: 'pko-t5-base, head x d^-0.5', preset: 'pko-t5-base', batch: 1, srcLen: 512, tgtLen: 64, warmup: 2, runs: 5, dropoutRuns: 0, headScale: 768 ** -0.5, full: false, targets: true },
];

async function timeOnce<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
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

/** Extra measurements of a shape's first case: ORT-allocated gradients, dropout, memory settings. */
interface FullResult {
  /** forwardBackward with ORT-allocated gradient outputs copied into the flat array. */
  readonly copiedForwardBackward: Timing;
  /** copied / bound, medians (> 1: binding outputs to the flat array saves that much). */
  readonly copiedOverBound: number;
  readonly dropoutCreateMs: number;
  readonly dropoutForwardBackward: Timing;
  readonly dropoutOverhead: number;
  readonly maskMs: Timing;
  readonly maskMiB: number;
  /** Peak RSS (MiB) of a child process: forward only, and F+B with each memory setting. */
  readonly memory: {
    readonly forward: ProbeResult;
    readonly train: ProbeResult;
    readonly trainPatternOn: ProbeResult;
    readonly trainArenaOff: ProbeResult;
  };
}

interface CaseResult {
  readonly name: string;
  readonly params: number;
  readonly createMs: number;
  readonly forward: Timing;
  readonly forwardBackward: Timing;
  /** Building one call's input tensors in JS. */
  readonly feedsMs: Timing;
  /** forwardBackward / forward, medians. */
  readonly ratio: number;
  /** The same of the fastest runs: closer to the machine's capability when other processes interfere. */
  readonly ratioOfMins: number;
  readonly logits: LogitStats;
  /** |loss(F) - loss(F+B)| / |loss(F)|: the two sessions compute the same loss. */
  readonly lossRelDiff: number;
  readonly forwardGflop: number;
  readonly achievedGflops: number;
  readonly achievedGflopsBest: number;
  /** The MatMul yardstick measured just before this case (GFLOP/s). */
  readonly yardstickGflops: number;
  readonly vsYardstick: number;
  readonly vsYardstickBest: number;
  readonly profile: KernelProfile;
  /** Forward values the backward reads (our graph's own count), dropout off and on. */
  readonly saved: SavedActivations;
  readonly savedDropout: SavedActivations;
  readonly full: FullResult | null;
  readonly targets: boolean;
}

async function benchCase(k: Case, threads: number, profileDir: string, progress: (msg: string) => void): Promise<CaseResult> {
  // Measured right before the model so both see the same machine (other processes may share it).
  const yardstick = await matmulYardstick(threads, false);
  const config = parseT5Config(T5_PRESETS[k.preset], `preset:${k.preset}`);
  const layout = FlatLayout.fromSpecs(t5ParamSpecs(config));
  const params = initT5Flat(config, layout, SEED);
  if (k.headScale !== 1) {
    const head = layout.view(params, 'lm_head.weight');
    for (let i = 0; i < head.length; i++) head[i]! *= k.headScale;
  }
  const grad = new Float32Array(layout.totalSize);
  const batch = randomBatch(config, k.batch, k.srcLen, k.tgtLen);
  progress(`${k.name}: ${(layout.totalSize / 1e6).toFixed(1)} M params; creating sessions`);

  const created = await timeOnce(() => T5Engine.create(config, { dtype: 'float32', dropout: false, intraOpThreads: threads }));
  const engine = created.value;
  const { a: forward, b: forwardBackward } = await timeInterleaved(k.warmup, k.runs, () => engine.forwardLoss(params, batch), () => engine.forwardBackward(params, grad, batch));
  const lossF = await engine.forwardLoss(params, batch);
  const lossFB = await engine.forwardBackward(params, grad, batch);
  // The JS side of a call: parameter views, data tensors (no copies of parameters).
  const feeds = await timeRuns(3, 20, async () => engine.buildFeeds(params, batch));
  await engine.release();
  const logits = await logitStats(config, params, batch, threads);
  globalThis.gc?.();

  // onnxruntime's profile of the F+B session alone (its eval session is never made here).
  progress(`${k.name}: forward+backward ${forwardBackward.medianMs.toFixed(1)} ms; profiling it`);
  const prefix = join(profileDir, k.preset);
  const profiled = await T5Engine.create(config, { dtype: 'float32', dropout: false, intraOpThreads: threads, profileFilePrefix: prefix });
  const profileRuns = Math.min(k.runs, 3);
  for (let i = 0; i < k.warmup + profileRuns; i++) await profiled.forwardBackward(params, grad, batch);
  await profiled.endProfiling();
  await profiled.release();
  const profile = takeProfile(prefix, profileRuns);
  globalThis.gc?.();

  const full = k.full ? await benchFull(k, config, params, grad, batch, forwardBackward, threads, progress) : null;
  const flops = t5ForwardFlops(config, batch.batchSize, batch.srcLen, batch.tgtLen);
  const dims = { batch: batch.batchSize, src_len: batch.srcLen, tgt_len: batch.tgtLen };
  const achievedGflops = (3 * flops) / (forwardBackward.medianMs * 1e6);
  const achievedGflopsBest = (3 * flops) / (forwardBackward.minMs * 1e6);
  return {
    name: k.name,
    params: layout.totalSize,
    createMs: created.ms,
    forward,
    forwardBackward,
    ratio: forwardBackward.medianMs / forward.medianMs,
    feedsMs: feeds,
    ratioOfMins: forwardBackward.minMs / forward.minMs,
    logits,
    lossRelDiff: Math.abs(lossF.lossSum - lossFB.lossSum) / Math.abs(lossF.lossSum),
    forwardGflop: flops / 1e9,
    achievedGflops,
    achievedGflopsBest,
    yardstickGflops: yardstick.gflops,
    vsYardstick: achievedGflops / yardstick.gflops,
    vsYardstickBest: achievedGflopsBest / yardstick.gflops,
    profile,
    saved: savedActivations(config, dims, false),
    savedDropout: savedActivations(config, dims, true),
    full,
    targets: k.targets,
  };
}

async function benchFull(
  k: Case, config: T5Config, params: Float32Array, grad: Float32Array, batch: Seq2SeqBatch, bound: Timing, threads: number, progress: (msg: string) => void,
): Promise<FullResult> {
  // Gradients bound to the flat array (ORT writes in place) vs ORT-allocated outputs copied in JS.
  progress(`${k.name}: timing forward+backward with ORT-allocated gradients copied into the flat array`);
  const copiedEngine = await T5Engine.create(config, { dtype: 'float32', dropout: false, intraOpThreads: threads, gradientOutputs: 'copied' });
  const copiedForwardBackward = await timeRuns(k.warmup, Math.min(k.runs, 3), () => copiedEngine.forwardBackward(params, grad, batch));
  await copiedEngine.release();
  globalThis.gc?.();

  // Dropout on: another training graph (mask inputs and their Mul/Cast nodes), masks made in JS.
  progress(`${k.name}: timing with dropout on`);
  const key: DropoutKey = { seed: SEED, step: 0, sampleIndices: Array.from({ length: batch.batchSize }, (_, i) => i) };
  const createdDropout = await timeOnce(() => T5Engine.create(config, { dtype: 'float32', dropout: true, intraOpThreads: threads }));
  const dropoutEngine = createdDropout.value;
  const dropoutForwardBackward = await timeRuns(1, k.dropoutRuns, () => dropoutEngine.forwardBackward(params, grad, batch, key));
  await dropoutEngine.release();
  globalThis.gc?.();
  const masks = await timeDropoutMasks(config, batch, key, k.dropoutRuns);

  progress(`${k.name}: peak RSS in child processes (forward; F+B with the engine's settings, memory pattern on, arena off)`);
  const probe = { preset: k.preset, srcLen: k.srcLen, tgtLen: k.tgtLen, batch: k.batch, memoryArena: true, memoryPattern: false } as const;
  const memory = {
    forward: await measureStepMemory({ ...probe, phase: 'forward' }, threads),
    train: await measureStepMemory({ ...probe, phase: 'train' }, threads),
    trainPatternOn: await measureStepMemory({ ...probe, phase: 'train', memoryPattern: true }, threads),
    trainArenaOff: await measureStepMemory({ ...probe, phase: 'train', memoryArena: false }, threads),
  };
  return {
    copiedForwardBackward,
    copiedOverBound: copiedForwardBackward.medianMs / bound.medianMs,
    dropoutCreateMs: createdDropout.ms,
    dropoutForwardBackward,
    dropoutOverhead: dropoutForwardBackward.medianMs / bound.medianMs,
    maskMs: masks.ms,
    maskMiB: masks.bytes / MiB,
    memory,
  };
}

// ---- report --------------------------------------------------------------------------------

const MiB = 1024 * 1024;

const BartTiming = z.object({
  yardstickGflops: z.number(), forwardGflop: z.number(),
  forward: z.object({ medianMs: z.number(), minMs: z.number() }), forwardBackward: z.object({ medianMs: z.number(), minMs: z.number() }),
});
type BartTiming = z.infer<typeof BartTiming>;

async function bartRow(threads: number, runs: number, progress: (msg: string) => void): Promise<BartTiming> {
  progress(`kobart-news 512/64 (block engine, bench/bart-engine --time, ${runs} runs)`);
  const script = fileURLToPath(new URL('./bart-engine.js', import.meta.url));
  const out = await runNode([script, '--time', '--runs', String(runs), '--threads', String(threads), '--src', '512', '--tgt', '64'], { label: 'bart-engine --time', timeoutMs: 30 * 60_000, viaShell: true });
  return BartTiming.parse(JSON.parse(out));
}

/** One line per model: the T5 cases above (whole-model engine) and BART (block engine). */
function printModelRows(results: readonly CaseResult[], bart: BartTiming | null): void {
  const rows: [string, string, number, number, number, number][] = results.map((r) => [r.name, 'T5 whole-model', r.forward.medianMs, r.forwardBackward.medianMs, r.achievedGflops, r.vsYardstick]);
  if (bart) {
    const achieved = (3 * bart.forwardGflop * 1e3) / bart.forwardBackward.medianMs;
    rows.push(['kobart-news 512/64', 'BART block', bart.forward.medianMs, bart.forwardBackward.medianMs, achieved, achieved / bart.yardstickGflops]);
  }
  console.log('case                            engine          F ms    F+B ms  (F+B)/F  GFLOP/s  / yardstick');
  for (const [name, engine, f, fb, g, y] of rows) {
    console.log(`${name.padEnd(32)}${engine.padEnd(16)}${f.toFixed(0).padStart(6)}${fb.toFixed(0).padStart(10)}${(fb / f).toFixed(2).padStart(9)}${g.toFixed(1).padStart(9)}${y.toFixed(2).padStart(13)}`);
  }
}

function printTable(results: readonly CaseResult[]): void {
  const f = (x: number, digits = 1) => x.toFixed(digits);
  const t = (x: Timing) => `${f(x.medianMs)} / ${f(x.minMs)}`;
  const full = (cell: (r: FullResult) => string) => (r: CaseResult) => (r.full ? cell(r.full) : '-');
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const rows: [string, (r: CaseResult) => string][] = [
    ['parameters (M)', (r) => f(r.params / 1e6, 2)],
    ['session creation, F+B (ms)', (r) => f(r.createMs, 0)],
    ['forward (ms, median / min)', (r) => t(r.forward)],
    ['forward+backward (ms, median / min)', (r) => t(r.forwardBackward)],
    ['(F+B) / F, medians (ideal about 3)', (r) => f(r.ratio, 2)],
    ['(F+B) / F, fastest runs', (r) => f(r.ratioOfMins, 2)],
    ['forward matmul GFLOP (analytic)', (r) => f(r.forwardGflop, 3)],
    ['achieved GFLOP/s (3 x fwd / F+B median)', (r) => f(r.achievedGflops)],
    ['  same for the fastest F+B run', (r) => f(r.achievedGflopsBest)],
    ['MatMul yardstick just before (GFLOP/s)', (r) => f(r.yardstickGflops)],
    ['achieved / yardstick (median / fastest)', (r) => `${f(r.vsYardstick, 2)} / ${f(r.vsYardstickBest, 2)}`],
    ['loss per token', (r) => f(r.logits.lossPerToken, 3)],
    ['logit std', (r) => f(r.logits.logitStd, 2)],
    ['d loss / d logits: subnormal in float32', (r) => pct(r.logits.subnormalShare)],
    ['  underflowing to 0', (r) => pct(r.logits.zeroShare)],
    ['|loss F - loss F+B| / |loss F|', (r) => r.lossRelDiff.toExponential(1)],
    ['profiled F+B: run / kernels (ms)', (r) => `${f(r.profile.runMs, 0)} / ${f(r.profile.kernelMs, 0)}`],
    ['JS feeds per call (ms, median / min)', (r) => `${r.feedsMs.medianMs.toFixed(2)} / ${r.feedsMs.minMs.toFixed(2)}`],
    ['F+B, gradients copied from ORT (ms)', full((x) => t(x.copiedForwardBackward))],
    ['  copied / bound in place', full((x) => f(x.copiedOverBound, 3))],
    ['session creation, dropout on (ms)', full((x) => f(x.dropoutCreateMs, 0))],
    ['F+B dropout on (ms, median / min)', full((x) => t(x.dropoutForwardBackward))],
    ['dropout on / off (F+B)', full((x) => f(x.dropoutOverhead, 2))],
    ['of which JS mask fill (ms, median / min)', full((x) => `${t(x.maskMs)} (${f(x.maskMiB)} MiB)`)],
    ['peak RSS (MiB): params + grad buffer', full((x) => f(x.memory.train.initMiB, 0))],
    ['  forward (eval session)', full((x) => f(x.memory.forward.peakMiB, 0))],
    ['  F+B (arena on, pattern off: default)', full((x) => f(x.memory.train.peakMiB, 0))],
    ['  F+B, memory pattern on', full((x) => f(x.memory.trainPatternOn.peakMiB, 0))],
    ['  F+B, memory arena off', full((x) => f(x.memory.trainArenaOff.peakMiB, 0))],
    ['F+B peak above forward (MiB)', full((x) => f(x.memory.train.peakMiB - x.memory.forward.peakMiB, 0))],
    ['saved for backward (MiB): attn/ffn/other', (r) => `${f(r.saved.attentionMiB, 0)}/${f(r.saved.feedForwardMiB, 0)}/${f(r.saved.otherMiB, 0)}`],
    ['  total, dropout off / on', (r) => `${f(r.saved.totalMiB, 0)} / ${f(r.savedDropout.totalMiB, 0)}`],
  ];
  const cells = rows.map(([label, cell]) => [label, ...results.map(cell)]);
  const header = ['', ...results.map((r) => r.name)];
  const widths = header.map((_, i) => Math.max(...[header, ...cells].map((row) => row[i]!.length)));
  const line = (row: readonly string[]) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of cells) console.log(line(row));
}

/** Issue 12's targets for pko-t5-base, judged on this run's numbers. */
function printTargets(results: readonly CaseResult[]): void {
  const pko = results.find((r) => r.targets && r.full);
  for (const r of results.filter((x) => x.targets)) {
    const mark = (ok: boolean) => (ok ? 'met' : 'NOT met');
    console.log(`targets, ${r.name}: (F+B)/F of the fastest runs ${r.ratioOfMins.toFixed(2)} <= 3.3 ${mark(r.ratioOfMins <= 3.3)}; achieved / yardstick ${r.vsYardstickBest.toFixed(2)} (fastest F+B) >= 0.7 ${mark(r.vsYardstickBest >= 0.7)}`);
  }
  if (pko?.full) {
    const above = pko.full.memory.train.peakMiB - pko.full.memory.forward.peakMiB;
    console.log(`target, ${pko.name}: F+B peak RSS above forward ${(above / 1024).toFixed(2)} GiB <= 2.5 GB ${above * MiB <= 2.5e9 ? 'met' : 'NOT met'}`);
  }
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        'skip-base': { type: 'boolean', default: false },
        case: { type: 'string' },
        runs: { type: 'string' },
        threads: { type: 'string', default: '2' },
        'skip-bart': { type: 'boolean', default: false },
      },
      strict: true,
    }).values;
  } catch (e) {
    console.error(`${(e as Error).message}\nusage: node --expose-gc dist/bench/engine.js [--skip-base] [--skip-bart] [--case NAME-PART] [--runs N] [--threads N]`);
    return 2;
  }
  let threads: number;
  let runs: number | undefined;
  try {
    threads = positiveOption('threads', args.threads)!;
    runs = positiveOption('runs', args.runs);
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

  const cases = CASES.filter((c) => !(args['skip-base'] && c.preset === 'pko-t5-base'))
    .filter((c) => !args.case || c.name.includes(args.case))
    .map((c) => (runs ? { ...c, runs } : c));
  const results: CaseResult[] = [];
  const profileDir = mkdtempSync(join(tmpdir(), 'kp-bench-profile-'));
  try {
    for (const c of cases) results.push(await benchCase(c, threads, profileDir, progress));
  } finally {
    rmSync(profileDir, { recursive: true, force: true });
  }
  // Measured again at the end: a large drift means the machine was busy and the run is suspect.
  const yardEnd = await matmulYardstick(threads, false);

  const y = (r: Yardstick) => `${r.gflops.toFixed(1)} GFLOP/s (median ${r.ms.medianMs.toFixed(2)} ms, min ${r.ms.minMs.toFixed(2)} ms)`;
  console.log(`yardstick: ORT MatMul f32 ${YARDSTICK_N}^3, ${threads} threads, engine options (spinning off): ${y(yardStart)}`);
  console.log(`           same with spinning on: ${y(yardSpin)}`);
  console.log(`           spinning off again at the end: ${y(yardEnd)}; load average at end: ${load()}`);
  console.log('');
  printTable(results);
  // The BART row (issue 18): kobart-news on the block engine, timed by bench/bart-engine in a child
  // with this process's environment (so the same malloc settings as the rows above).
  const bart = args['skip-bart'] || (args.case && !'kobart-news'.includes(args.case)) ? null : await bartRow(threads, runs ?? 3, progress);
  console.log('');
  printModelRows(results, bart);
  console.log('');
  printTargets(results);
  for (const r of results) {
    console.log('');
    printProfile(`${r.name}, forward+backward`, r.profile);
  }
  console.log('');
  console.log(
    `BENCH_ENGINE ${JSON.stringify({
      threads,
      yardstickGflops: yardStart.gflops,
      yardstickSpinningGflops: yardSpin.gflops,
      yardstickEndGflops: yardEnd.gflops,
      loadAverageEnd: loadavg(),
      cases: results,
      bart,
    })}`,
  );
  return 0;
}

process.exitCode = await main();
