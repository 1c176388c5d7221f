import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { Graph } from '../shared/onnx/graph.js';
import { matmul } from '../shared/onnx/ops.js';
import { serializeGraph } from '../shared/onnx/serialize.js';
import { EngineOptionsSchema, sessionOptions } from '../shared/onnx/session-options.js';
import { rngStream } from '../shared/random.js';
import { timing, type Timing } from './bench-stats.js';

// Timing helpers of the engine benchmarks (bench/engine for T5, bench/bart-engine for BART): runs
// after a warm-up, two calls interleaved, and the MatMul yardstick, this machine's compute measured
// in the same process with the engine's session options.

export const YARDSTICK_N = 1024;
const SEED = 20261128;
/** Key of the stream the yardstick's operands draw from. */
const BATCH_STREAM_KEY = 0xbe7c;

/** Warm up (ORT's memory arena grows during the first runs), then time each of `runs` calls. */
export async function timeRuns(warmup: number, runs: number, fn: () => Promise<unknown>): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await fn();
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  return timing(ms);
}

/**
 * Time two calls alternately (a, b, a, b, ...) after warming both up: a load that comes and goes
 * then hits both alike, so their ratio means more than that of two separate blocks of runs.
 */
export async function timeInterleaved(warmup: number, runs: number, a: () => Promise<unknown>, b: () => Promise<unknown>): Promise<{ a: Timing; b: Timing }> {
  for (let i = 0; i < warmup; i++) {
    await a();
    await b();
  }
  const msA: number[] = [];
  const msB: number[] = [];
  for (let i = 0; i < runs; i++) {
    for (const [fn, ms] of [[a, msA], [b, msB]] as const) {
      const t0 = performance.now();
      await fn();
      ms.push(performance.now() - t0);
    }
  }
  return { a: timing(msA), b: timing(msB) };
}

export interface Yardstick {
  readonly allowSpinning: boolean;
  readonly ms: Timing;
  /** 2 n^3 / median time. */
  readonly gflops: number;
}

/** Y = A @ B, n x n float32, built with the project's DSL and run with the engine's session options. */
export async function matmulYardstick(threads: number, allowSpinning: boolean): Promise<Yardstick> {
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

