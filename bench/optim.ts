// Optimizer-math benchmark: AdamW, clipping and their memcpy yardstick, measured in one run.
//
//   npx tsc -p . && node dist/bench/optim.js [params]      (default 25,000,000 params)
//
// AdamW reads p, g, m, v and writes p, m, v: 7 float32 arrays' worth (28 bytes) per parameter.
// The yardstick is a Buffer.copy of those same 28 bytes per parameter, timed in the same process,
// so the ratio is free of the machine's speed. Best of 5 interleaved rounds after a warm-up round.
//
// AdamWThreads with 1 and 2 threads runs the same step on the same arrays (SharedArrayBuffer views,
// which the threads need; adamWStep uses them too, so every AdamW line reads the same memory). Its
// bound is the memcpy rate over 28 bytes: params/s = params / memcpy time.
import os from 'node:os';
import { parseT5Config, PKO_T5_BASE } from '../shared/models/t5-config.js';
import { numel, t5ParamSpecs } from '../shared/models/t5-params.js';
import { AdamWState, adamWStep, parseAdamWOptions } from '../shared/optim/adamw.js';
import { AdamWThreads, sharedFloat32 } from '../shared/optim/adamw-threads.js';
import { clipCoefficient, scaleInPlace, sumOfSquares } from '../shared/optim/clip.js';
import { decayRanges, type LayoutEntry } from '../shared/optim/decay-ranges.js';

const n = Number(process.argv[2] ?? 25_000_000);
if (!Number.isSafeInteger(n) || n <= 0) {
  process.stderr.write(`usage: node dist/bench/optim.js [params]  (a positive integer, got ${process.argv[2]})\n`);
  process.exit(2);
}

/**
 * Best time of each candidate over `rounds` rounds, after one warm-up round. Rounds interleave the
 * candidates, so a burst of load from other processes hits them alike and the ratios stay fair.
 */
async function bestSeconds<K extends string>(candidates: Record<K, () => void | Promise<void>>, rounds = 5): Promise<Record<K, number>> {
  const names = Object.keys(candidates) as K[];
  const fastest = Object.fromEntries(names.map((k) => [k, Infinity])) as Record<K, number>;
  for (let round = 0; round <= rounds; round++) {
    for (const k of names) {
      const t0 = process.hrtime.bigint();
      await candidates[k]();
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (round > 0) fastest[k] = Math.min(fastest[k], seconds);
    }
  }
  return fastest;
}

// A rank's range of the real pko-t5-base layout (starting in encoder block 0), so the decay
// sub-ranges (norm weights, relative attention bias) are the ones a worker sees.
let offset = 0;
const layout: LayoutEntry[] = t5ParamSpecs(parseT5Config(PKO_T5_BASE)).map((spec) => {
  const entry = { name: spec.name, offset, size: numel(spec.shape) };
  offset += entry.size;
  return entry;
});
const start = layout.find((e) => e.name.startsWith('encoder.block.0.'))!.offset;
const end = Math.min(start + n, offset);
const size = end - start;
const ranges = decayRanges(layout, start, end);

let seed = 1;
const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1;
// Filled in place: map() would return an ordinary (not shared) array.
const params = sharedFloat32(size);
for (let i = 0; i < size; i++) params[i] = random() * 0.05;
const grads = sharedFloat32(size);
for (let i = 0; i < size; i++) grads[i] = random() * 1e-3;
const hyper = parseAdamWOptions({ adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8, weight_decay: 0.01 });
const state = new AdamWState(start, end, { m: sharedFloat32(size), v: sharedFloat32(size), step: 0 });

// The plain loop the design's yardstick refers to: the formulas written straight down, per element.
function naiveAdamW(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, t: number, lr: number): void {
  for (let i = 0; i < p.length; i++) {
    p[i] -= lr * hyper.weightDecay * p[i];
    m[i] = hyper.beta1 * m[i] + (1 - hyper.beta1) * g[i];
    v[i] = hyper.beta2 * v[i] + (1 - hyper.beta2) * g[i] * g[i];
    const mHat = m[i] / (1 - Math.pow(hyper.beta1, t));
    const vHat = v[i] / (1 - Math.pow(hyper.beta2, t));
    p[i] -= (lr * mHat) / (Math.sqrt(vHat) + hyper.eps);
  }
}

const bytesPerParam = 28;
const source = Buffer.alloc(size * bytesPerParam, 1);
const target = Buffer.alloc(size * bytesPerParam);
const naiveM = new Float32Array(size);
const naiveV = new Float32Array(size);
let naiveStep = 0;
let sink = 0;
const loadAtStart = os.loadavg();
const oneThread = await AdamWThreads.create(1);
const twoThreads = await AdamWThreads.create(2);
const best = await bestSeconds({
  memcpy: () => {
    source.copy(target);
  },
  adamw: () => adamWStep(state, hyper, { params, grads, lr: 1e-5, ranges }),
  threads1: () => oneThread.step(state, hyper, { params, grads, lr: 1e-5, ranges }),
  threads2: () => twoThreads.step(state, hyper, { params, grads, lr: 1e-5, ranges }),
  adamwScaled: () => adamWStep(state, hyper, { params, grads, lr: 1e-5, ranges, gradScale: 0.5 }),
  naive: () => naiveAdamW(params, grads, naiveM, naiveV, ++naiveStep, 1e-5),
  squares: () => {
    sink += sumOfSquares(grads);
  },
  // 2 / (2 + 1e-6): just below 1, so grads stay finite over the rounds.
  scale: () => scaleInPlace(grads, clipCoefficient(4, 1) * 2),
});

await Promise.all([oneThread.close(), twoThreads.close()]);

const row = (name: string, seconds: number, note = '') =>
  `${name.padEnd(34)} ${(seconds * 1e3).toFixed(1).padStart(8)} ms ${(size / seconds / 1e9).toFixed(3).padStart(7)} G params/s${note}`;
const copied = size * bytesPerParam;
const bound = size / best.memcpy; // params/s if AdamW's 28 bytes moved at the memcpy rate
const ofBound = (seconds: number) => `  ${(size / seconds / bound).toFixed(2)} of the memcpy bound`;
const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
const lines = [
  `optimizer math on ${size.toLocaleString('en-US')} params of pko-t5-base (flat [${start}, ${end}), ${ranges.length} decay sub-ranges), node ${process.version}`,
  `${os.cpus().length} cpus; load average (1, 5, 15 min) ${load(loadAtStart)} at start, ${load(os.loadavg())} at end`,
  row(`memcpy of 7 arrays (${(copied / 2 ** 20).toFixed(0)} MiB)`, best.memcpy, `  ${(copied / best.memcpy / 1e9).toFixed(2)} GB/s copied`),
  row('adamWStep', best.adamw, `  time / memcpy ${(best.adamw / best.memcpy).toFixed(2)}, ${(copied / best.adamw / 1e9).toFixed(2)} GB/s touched`),
  `${'memcpy bound for AdamW (28 B/param)'.padEnd(34)} ${''.padStart(11)} ${(bound / 1e9).toFixed(3).padStart(7)} G params/s`,
  row('AdamWThreads, 1 thread', best.threads1, ofBound(best.threads1)),
  row('AdamWThreads, 2 threads', best.threads2, `${ofBound(best.threads2)}, speed-up over 1 thread ${(best.threads1 / best.threads2).toFixed(2)}x`),
  row('adamWStep + gradScale (clip folded)', best.adamwScaled, `  time / memcpy ${(best.adamwScaled / best.memcpy).toFixed(2)}`),
  row('naive JS AdamW', best.naive, `  adamWStep speed-up ${(best.naive / best.adamw).toFixed(2)}x`),
  row('sumOfSquares', best.squares),
  row('scaleInPlace', best.scale, `  a separate clip pass costs ${((best.scale / best.adamw) * 100).toFixed(0)}% of adamWStep`),
];
process.stdout.write(`${lines.join('\n')}\n`);
if (!Number.isFinite(sink)) process.exitCode = 1; // keeps sumOfSquares from being optimised away
