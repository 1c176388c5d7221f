import { spawn } from 'node:child_process';
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
import { matmulYardstick, timeInterleaved, YARDSTICK_N } from './engine-timing.js';

// `npm run bench:bart-engine [-- --src 512 --tgt 64 --runs N --threads N --no-memory]`: the BART
// row of the engine benchmark. kobart-news's shape (vocab 30000, d_model 768, 6 + 6 layers, 16
// heads, ffn 3072; random weights from _init_weights), one row of 512 source and 64 target tokens,
// float32, the block engine (activation checkpointing off, as bench/engine's T5 rows): forward and
// forward+backward times, their ratio (ideal about 3), the achieved GFLOP/s against one ORT MatMul
// measured in the same process, and the peak RSS of forward-only and of training steps in child
// processes. The last line is `BENCH_BART_ENGINE {json}`.

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
type Probe = z.infer<typeof ProbeSchema>;
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

/** A child per phase, through a shell: Linux keeps maxRSS across exec (see bench/engine-memory.ts). */
async function probe(phase: 'forward' | 'train', src: number, tgt: number, threads: number): Promise<Probe> {
  const args = [fileURLToPath(import.meta.url), '--probe', phase, '--src', String(src), '--tgt', String(tgt), '--threads', String(threads)];
  const child = spawn('/bin/sh', ['-c', '"$@"; exit $?', 'sh', process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`memory probe ${phase} exited ${code}`);
  return ProbeSchema.parse(JSON.parse(out));
}

async function main(): Promise<number> {
  const { values: v } = parseArgs({
    options: {
      src: { type: 'string', default: '512' }, tgt: { type: 'string', default: '64' }, runs: { type: 'string' }, threads: { type: 'string' },
      'no-memory': { type: 'boolean', default: false }, probe: { type: 'string' },
    },
    strict: true,
  });
  const src = positiveOption('src', v.src)!;
  const tgt = positiveOption('tgt', v.tgt)!;
  const threads = positiveOption('threads', v.threads) ?? cpus().length;
  if (v.probe === 'forward' || v.probe === 'train') {
    await probeMain(v.probe, src, tgt, threads);
    return 0;
  }
  const runs = positiveOption('runs', v.runs) ?? 3;
  const config = parseBartConfig(BART_PRESETS['kobart-news']);
  const log = (msg: string) => console.error(`[bench:bart-engine] ${msg}`);
  console.log(`kp-coord BART engine bench: node ${process.version}, onnxruntime-node ${ort.env.versions.node}, ${cpus().length} cpus, ${threads} intra-op threads, float32, load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);

  const yardstick = await matmulYardstick(threads, false);
  log(`yardstick: ${yardstick.gflops.toFixed(1)} GFLOP/s (MatMul f32 ${YARDSTICK_N}^3)`);
  const t0 = performance.now();
  const { engine, params, grad, count } = await makeEngine(config, threads);
  const createMs = performance.now() - t0;
  log(`kobart-news: ${(count / 1e6).toFixed(1)} M parameters, sessions in ${(createMs / 1000).toFixed(1)} s; timing ${runs} interleaved runs`);
  const batch = randomRow(config, src, tgt);
  const { a: forward, b: forwardBackward } = await timeInterleaved(1, runs, () => engine.forwardLoss(params, batch), () =>
    engine.forwardBackward(params, batch, undefined, (lo, _hi, g) => grad.set(g, lo)));
  const loss = await engine.forwardLoss(params, batch);
  await engine.release();
  const flops = bartForwardFlops(config, 1, src, tgt);
  const gflops = (ms: number) => (3 * flops) / (ms * 1e6);
  const memory = v['no-memory'] ? null : { forward: await probe('forward', src, tgt, threads), train: await probe('train', src, tgt, threads) };

  const rows: [string, string][] = [
    ['case', `kobart-news ${src}/${tgt} x1`],
    ['parameters (M)', (count / 1e6).toFixed(1)],
    ['loss per token (ln V = 10.31)', (loss.lossSum / loss.tokenCount).toFixed(3)],
    ['forward ms (median / min)', `${forward.medianMs.toFixed(0)} / ${forward.minMs.toFixed(0)}`],
    ['F+B ms (median / min)', `${forwardBackward.medianMs.toFixed(0)} / ${forwardBackward.minMs.toFixed(0)}`],
    ['(F+B)/F (medians / mins)', `${(forwardBackward.medianMs / forward.medianMs).toFixed(2)} / ${(forwardBackward.minMs / forward.minMs).toFixed(2)}`],
    ['forward GFLOP (matmuls)', (flops / 1e9).toFixed(1)],
    ['step GFLOP/s (median / fastest)', `${gflops(forwardBackward.medianMs).toFixed(1)} / ${gflops(forwardBackward.minMs).toFixed(1)}`],
    ['yardstick GFLOP/s', yardstick.gflops.toFixed(1)],
    ['achieved / yardstick (median / fastest)', `${(gflops(forwardBackward.medianMs) / yardstick.gflops).toFixed(2)} / ${(gflops(forwardBackward.minMs) / yardstick.gflops).toFixed(2)}`],
    ...(memory ? [
      ['peak RSS MiB, forward (after init)', `${memory.forward.peakMiB.toFixed(0)} (${memory.forward.initMiB.toFixed(0)})`],
      ['peak RSS MiB, training (after init)', `${memory.train.peakMiB.toFixed(0)} (${memory.train.initMiB.toFixed(0)})`],
    ] as [string, string][] : []),
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, x] of rows) console.log(`${k.padEnd(width)}  ${x}`);
  console.log(`BENCH_BART_ENGINE ${JSON.stringify({ threads, src, tgt, params: count, createMs, forward, forwardBackward, forwardGflop: flops / 1e9, yardstickGflops: yardstick.gflops, loss, memory, loadAverageEnd: loadavg() })}`);
  return 0;
}

process.exitCode = await main();
