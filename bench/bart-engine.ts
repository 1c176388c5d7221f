import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { z } from 'zod';
import type { Seq2SeqBatch } from '../shared/models/batch.js';
import { BART_PRESETS, parseBartConfig, type BartConfig } from '../shared/models/bart-config.js';
import { BartFamily } from '../shared/models/bart-family.js';
import { rngStream } from '../shared/random.js';
import { FlatLayout } from '../shared/weights/flat-layout.js';
import { initFlatRange } from '../shared/weights/init.js';
import { BlockEngine } from '../worker/engine/block-engine.js';
import { positiveOption } from './bench-stats.js';
import { matmulYardstick, timeInterleaved } from './engine-timing.js';
import { runNode } from './child-run.js';
import { withWorkerMalloc } from '../worker/malloc-settings.js';

// `npm run bench:bart-engine [-- --src 512 --tgt 64 --runs N --threads N --no-memory]`: the BART
// row of the engine benchmark. kobart-news's shape (vocab 30000, d_model 768, 6 + 6 layers, 16
// heads, ffn 3072; random weights from _init_weights), one row of 512 source and 64 target tokens,
// float32, the block engine (activation checkpointing off, as bench/engine's T5 rows): forward and
// forward+backward times, their ratio (ideal about 3), the achieved GFLOP/s against one ORT MatMul
// measured in the same process, timed in two child processes: with the malloc settings workers run
// with ([Note: worker malloc], the numbers reported) and with glibc's defaults (the ratio between
// them printed); and the peak RSS of forward-only and of training steps, each in a child process
// (workers' settings). The last line is `BENCH_BART_ENGINE {json}`.

const SEED = 20261128;
const BATCH_STREAM_KEY = 0xba27;
const MiB = 1024 * 1024;

/**
 * Matmul FLOPs of one forward pass (2 m n k per product; norms, softmax, GELU and the loss left
 * out). B batch, S source, T target tokens, d = d_model, f = ffn dim, V = vocab:
 *   encoder layer: 2BS(4 d^2) [q,k,v,out] + 2B(2 S^2 d) [QK^T, PV] + 2BS(2 d f)
 *   decoder layer: 2BT(4 d^2) + 2B(2 T^2 d) + 2BT(2 d^2) [cross q, out] + 2BS(2 d^2) [cross k, v]
 *                  + 2B(2 T S d) + 2BT(2 d f)
 *   LM head:       2BT dV
 * A training step is counted as 3 x forward (a gradient for each matmul operand).
 */
function bartForwardFlops(c: BartConfig, b: number, s: number, t: number): number {
  const d = c.dModel;
  const encoderLayer = 2 * b * (s * 4 * d * d + 2 * s * s * d + s * 2 * d * c.encoderFfnDim);
  const decoderLayer = 2 * b * (t * 4 * d * d + 2 * t * t * d + t * 2 * d * d + s * 2 * d * d + 2 * t * s * d + t * 2 * d * c.decoderFfnDim);
  return c.encoderLayers * encoderLayer + c.decoderLayers * decoderLayer + 2 * b * t * d * c.vocabSize;
}

/** One row of random ids above KoBART's special tokens (0..3), each sequence ending in eos; no padding. */
function randomRow(c: BartConfig, srcLen: number, tgtLen: number): Seq2SeqBatch {
  const stream = rngStream(SEED, BATCH_STREAM_KEY, 0);
  const ids = (len: number) => Int32Array.from({ length: len }, (_, i) => (i === len - 1 ? c.eosTokenId : 4 + Math.floor(stream.uniform() * (c.vocabSize - 4))));
  return { batchSize: 1, srcLen, tgtLen, inputIds: ids(srcLen), attentionMask: new Int32Array(srcLen).fill(1), labels: ids(tgtLen) };
}

async function makeEngine(config: BartConfig, threads: number) {
  const family = new BartFamily(config);
  const layout = FlatLayout.fromSpecs(family.paramSpecs());
  const params = initFlatRange(family.paramSpecs(), layout, SEED, 0, layout.totalSize);
  const bias = new Float32Array(FlatLayout.fromSpecs(family.frozenSpecs()).totalSize); // final_logits_bias: zeros, as HF inits it
  const engine = await BlockEngine.create(family, { dtype: 'float32', dropout: false, checkpointing: false, intraOpThreads: threads }, bias);
  const grad = new Float32Array(layout.totalSize);
  return { engine, params, grad, count: layout.totalSize };
}

const ProbeSchema = z.object({ initMiB: z.number(), peakMiB: z.number() });
const TimingSchema = z.object({
  yardstickGflops: z.number(), createMs: z.number(), forwardGflop: z.number(),
  forward: z.object({ medianMs: z.number(), minMs: z.number() }), forwardBackward: z.object({ medianMs: z.number(), minMs: z.number() }),
  loss: z.object({ lossSum: z.number(), tokenCount: z.number() }),
});
type Timing = z.infer<typeof TimingSchema>;
const peakRssMiB = () => (process.resourceUsage().maxRSS * 1024) / MiB;

/** The child: one engine, `steps` runs of the phase, then its peak RSS (after init, after the runs). */
async function probeMain(phase: 'forward' | 'train', src: number, tgt: number, threads: number): Promise<void> {
  const config = parseBartConfig(BART_PRESETS['kobart-news']);
  const { engine, params, grad } = await makeEngine(config, threads);
  const initMiB = peakRssMiB();
  const batch = randomRow(config, src, tgt);
  for (let i = 0; i < 3; i++) {
    if (phase === 'forward') await engine.forwardLoss(params, batch);
    else await engine.forwardBackward(params, batch, undefined, (lo, _hi, g) => grad.set(g, lo));
  }
  await engine.release();
  process.stdout.write(JSON.stringify({ initMiB, peakMiB: peakRssMiB() }));
}

/** The child: the MatMul yardstick, then forward and F+B timed interleaved (its process's malloc settings). */
async function timeMain(src: number, tgt: number, threads: number, runs: number): Promise<void> {
  const config = parseBartConfig(BART_PRESETS['kobart-news']);
  const yardstick = await matmulYardstick(threads, false);
  const t0 = performance.now();
  const { engine, params, grad } = await makeEngine(config, threads);
  const createMs = performance.now() - t0;
  const batch = randomRow(config, src, tgt);
  const { a: forward, b: forwardBackward } = await timeInterleaved(1, runs, () => engine.forwardLoss(params, batch), () =>
    engine.forwardBackward(params, batch, undefined, (lo, _hi, g) => grad.set(g, lo)));
  const loss = await engine.forwardLoss(params, batch);
  await engine.release();
  const out: Timing = { yardstickGflops: yardstick.gflops, createMs, forwardGflop: bartForwardFlops(config, 1, src, tgt) / 1e9, forward, forwardBackward, loss };
  process.stdout.write(JSON.stringify(out));
}

/**
 * A child per measurement, through a shell (Linux keeps maxRSS across exec, bench/engine-memory.ts),
 * with the given malloc settings: glibc's defaults, or the workers' ([Note: worker malloc]).
 */
function child(args: readonly string[], label: string, malloc: 'default' | 'worker'): Promise<string> {
  const rest = { ...process.env };
  delete rest.GLIBC_TUNABLES;
  const env = malloc === 'worker' ? withWorkerMalloc(rest) : rest;
  return runNode([fileURLToPath(import.meta.url), ...args], { label, timeoutMs: 20 * 60_000, viaShell: true, env });
}

async function main(): Promise<number> {
  const { values: v } = parseArgs({
    options: {
      src: { type: 'string', default: '512' }, tgt: { type: 'string', default: '64' }, runs: { type: 'string' }, threads: { type: 'string' },
      'no-memory': { type: 'boolean', default: false }, probe: { type: 'string' }, time: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const src = positiveOption('src', v.src)!;
  const tgt = positiveOption('tgt', v.tgt)!;
  const threads = positiveOption('threads', v.threads) ?? cpus().length;
  const runs = positiveOption('runs', v.runs) ?? 3;
  if (v.probe === 'forward' || v.probe === 'train') {
    await probeMain(v.probe, src, tgt, threads);
    return 0;
  }
  if (v.time) {
    await timeMain(src, tgt, threads, runs);
    return 0;
  }
  const config = parseBartConfig(BART_PRESETS['kobart-news']);
  const log = (msg: string) => console.error(`[bench:bart-engine] ${msg}`);
  console.log(`kp-coord BART engine bench: node ${process.version}, onnxruntime-node ${ort.env.versions.node}, ${cpus().length} cpus, ${threads} intra-op threads, float32, load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);

  const common = ['--src', String(src), '--tgt', String(tgt), '--threads', String(threads)];
  // The step timed in two children, glibc's malloc defaults and the workers' settings (the
  // difference is page faults on freed-and-refetched memory; [Note: worker malloc]).
  const timings = new Map<'default' | 'worker', Timing>();
  for (const malloc of ['default', 'worker'] as const) {
    log(`timing ${runs} interleaved runs, ${malloc} malloc, load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    timings.set(malloc, TimingSchema.parse(JSON.parse(await child([...common, '--time', '--runs', String(runs)], `timing (${malloc} malloc)`, malloc))));
  }
  const count = FlatLayout.fromSpecs(new BartFamily(config).paramSpecs()).totalSize;
  const flops = bartForwardFlops(config, 1, src, tgt);
  const gflops = (ms: number) => (3 * flops) / (ms * 1e6);
  const probe = async (phase: 'forward' | 'train') => ProbeSchema.parse(JSON.parse(await child([...common, '--probe', phase], `memory probe ${phase}`, 'worker')));
  const memory = v['no-memory'] ? null : { forward: await probe('forward'), train: await probe('train') };
  const { forward, forwardBackward, loss, yardstickGflops } = timings.get('worker')!;
  const base = timings.get('default')!;

  const rows: [string, string][] = [
    ['case', `kobart-news ${src}/${tgt} x1`],
    ['parameters (M)', (count / 1e6).toFixed(1)],
    ['loss per token (ln V = 10.31)', (loss.lossSum / loss.tokenCount).toFixed(3)],
    ['forward ms (median / min)', `${forward.medianMs.toFixed(0)} / ${forward.minMs.toFixed(0)}`],
    ['F+B ms (median / min)', `${forwardBackward.medianMs.toFixed(0)} / ${forwardBackward.minMs.toFixed(0)}`],
    ['(F+B)/F (medians / mins)', `${(forwardBackward.medianMs / forward.medianMs).toFixed(2)} / ${(forwardBackward.minMs / forward.minMs).toFixed(2)}`],
    ['glibc default malloc: F / F+B ms (medians)', `${base.forward.medianMs.toFixed(0)} / ${base.forwardBackward.medianMs.toFixed(0)}`],
    ['glibc default malloc: (F+B)/F (medians / mins)', `${(base.forwardBackward.medianMs / base.forward.medianMs).toFixed(2)} / ${(base.forwardBackward.minMs / base.forward.minMs).toFixed(2)}`],
    ['F+B, default / worker malloc (medians)', (base.forwardBackward.medianMs / forwardBackward.medianMs).toFixed(2)],
    ['forward GFLOP (matmuls)', (flops / 1e9).toFixed(1)],
    ['step GFLOP/s (median / fastest)', `${gflops(forwardBackward.medianMs).toFixed(1)} / ${gflops(forwardBackward.minMs).toFixed(1)}`],
    ['yardstick GFLOP/s', yardstickGflops.toFixed(1)],
    ['achieved / yardstick (median / fastest)', `${(gflops(forwardBackward.medianMs) / yardstickGflops).toFixed(2)} / ${(gflops(forwardBackward.minMs) / yardstickGflops).toFixed(2)}`],
    ...(memory ? [
      ['peak RSS MiB, forward (after init)', `${memory.forward.peakMiB.toFixed(0)} (${memory.forward.initMiB.toFixed(0)})`],
      ['peak RSS MiB, training (after init)', `${memory.train.peakMiB.toFixed(0)} (${memory.train.initMiB.toFixed(0)})`],
    ] as [string, string][] : []),
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, x] of rows) console.log(`${k.padEnd(width)}  ${x}`);
  console.log(`BENCH_BART_ENGINE ${JSON.stringify({ threads, src, tgt, params: count, timings: Object.fromEntries(timings), forwardGflop: flops / 1e9, memory, loadAverageEnd: loadavg() })}`);
  return 0;
}

process.exitCode = await main();
