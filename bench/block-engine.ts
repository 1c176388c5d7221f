import { T5Family } from '../shared/models/t5-family.js';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import type { Seq2SeqBatch } from '../shared/models/batch.js';
import { T5_PRESETS } from '../shared/models/presets.js';
import { parseT5Config } from '../shared/models/t5-config.js';
import { t5ParamSpecs } from '../shared/models/t5-params.js';
import { FlatLayout } from '../shared/weights/flat-layout.js';
import { initT5Flat } from '../shared/weights/init.js';
import { BlockEngine } from '../worker/engine/block-engine.js';
import { T5Engine } from '../worker/engine/t5-engine.js';
import { measureStepMemory, type ProbeEngine, type ProbeResult } from './engine-memory.js';
import { randomBatch } from './random-batch.js';
import { savedActivations } from './saved-activations.js';
import { positiveOption, timing as medianTiming, type Timing as MedianTiming } from './bench-stats.js';

// `npm run bench:block-engine [-- --case NAME-PART] [--runs N] [--threads N] [--skip-memory]`:
// the block engine (t5-block-engine.ts, [Note: block engine]) against the whole-model engine,
// forward+backward, dropout off, float32. For each case: step times of the whole-model engine and
// of the block engine with activation checkpointing off and on, timed round-robin after one
// warm-up each; the recompute cost block(on)/block(off) (ideal about 4/3: one more forward per
// step) and block(off)/whole; peak RSS of each in a child process (engine-memory.ts); the bytes
// kept between forward and backward, counted from what the forward sessions return (block
// outputs = the next blocks' inputs and the encoder output; without checkpointing also the saved
// activations), and the time inside session.run (forward runs, all runs; the rest of a step is
// our JS: feeds, gradient sums, the sink's copy). Cases: t5-small-bytes at the embedded default's shape (835/64 tokens, batch 4)
// and pko-t5-base 512/64 batch 1 with lm_head scaled by d_model^-0.5 (as bench/engine).
// The last line is `BENCH_BLOCK_ENGINE {json}`.

interface Case {
  readonly name: string;
  readonly preset: string;
  readonly batch: number;
  readonly srcLen: number;
  readonly tgtLen: number;
  readonly runs: number;
  /** Multiply lm_head by d_model^-0.5 after init (a trained model's logit scale). */
  readonly scaleHead: boolean;
}

const CASES: readonly Case[] = [
  { name: 't5-small-bytes 835/64 x4', preset: 't5-small-bytes', batch: 4, srcLen: 835, tgtLen: 64, runs: 5, scaleHead: false },
  { name: 'pko-t5-base 512/64, head x d^-0.5', preset: 'pko-t5-base', batch: 1, srcLen: 512, tgtLen: 64, runs: 3, scaleHead: true },
];

const SETTINGS = ['whole', 'block-off', 'block-on'] as const satisfies readonly ProbeEngine[];
type Setting = (typeof SETTINGS)[number];

const MiB = 1024 * 1024;
const BYTES: Readonly<Record<string, number>> = { float32: 4, float64: 8, int32: 4, int64: 8, bool: 1 };

/** Median and fastest, and every run's milliseconds (printed in the JSON line). */
interface Timing extends MedianTiming {
  readonly ms: readonly number[];
}

const timing = (ms: readonly number[]): Timing => ({ ...medianTiming(ms), ms });

/** What one step's session runs returned and took (the tap below). */
interface StepTap {
  /** Forward runs' `out`: the next block's input, the encoder output (read by every decoder layer). */
  blockOutputs: number;
  /** Forward runs' other outputs: saved activations (none with checkpointing). */
  saved: number;
  savedValues: number;
  forwardRuns: number;
  /** Wall time inside session.run (ORT + the binding's tensor copies): forward runs, all runs. */
  forwardMs: number;
  sessionMs: number;
}

const newTap = (): StepTap => ({ blockOutputs: 0, saved: 0, savedValues: 0, forwardRuns: 0, forwardMs: 0, sessionMs: 0 });

/**
 * Observe every InferenceSession.run of this process into `target()` (when not null): the runs
 * whose results hold `out` and no gradient are the block engine's forward runs (forwardBackward
 * keeps all their outputs in its stash until that block's backward). Returns the restore call.
 */
function tapSessionRuns(target: () => StepTap | null): () => void {
  // The typings declare a factory interface; the value is onnxruntime-common's session class.
  const proto = (ort.InferenceSession as unknown as { prototype: { run: (...a: unknown[]) => Promise<Record<string, ort.Tensor>> } }).prototype;
  const original = proto.run;
  proto.run = async function (this: unknown, ...a: unknown[]) {
    const t0 = performance.now();
    const out = await original.apply(this, a);
    const ms = performance.now() - t0;
    const acc = target();
    if (!acc) return out;
    acc.sessionMs += ms;
    const names = Object.keys(out);
    if (names.includes('out') && !names.some((n) => n.startsWith('grad.'))) {
      acc.forwardRuns++;
      acc.forwardMs += ms;
      for (const [name, t] of Object.entries(out)) {
        const bytes = t.size * (BYTES[t.type] ?? Number.NaN);
        if (name === 'out') acc.blockOutputs += bytes;
        else {
          acc.saved += bytes;
          acc.savedValues++;
        }
      }
    }
    return out;
  };
  return () => {
    proto.run = original;
  };
}

interface CaseResult {
  readonly name: string;
  readonly params: number;
  readonly loss: Record<Setting, number>;
  readonly createMs: Record<Setting, number>;
  readonly step: Record<Setting, Timing>;
  /** block(on) / block(off), medians and fastest runs (ideal about 4/3). */
  readonly recomputeRatio: number;
  readonly recomputeRatioOfMins: number;
  /** block(off) / whole, medians and fastest runs. */
  readonly blockVsWhole: number;
  readonly blockVsWholeOfMins: number;
  /** Mean per timed step: wall time inside session.run, forward runs and all (the rest is our JS). */
  readonly sessionMs: Record<Setting, { forward: number; total: number }>;
  /** Peak RSS (MiB) of a child doing warm-up + one F+B, and its RSS after the parameters. */
  readonly memory: Record<Setting, ProbeResult & { aboveParamsMiB: number }> | null;
  /** Kept between forward and backward (MiB). */
  readonly keptMiB: {
    /** Checkpointing on: block inputs (hidden states of every block + encoder output). */
    readonly checkpointInputs: number;
    /** The same from the config: ((L_enc + 2) b src + (L_dec + 1) b tgt) d_model floats. */
    readonly checkpointInputsFormula: number;
    /** Checkpointing off: the saved activations the forward sessions return beside `out`. */
    readonly savedActivations: number;
    readonly savedValues: number;
    /** Checkpointing off, all kept: block inputs + saved activations. */
    readonly savedTotal: number;
    /** The whole graph's forward values read by its backward (bench/saved-activations.ts). */
    readonly wholeGraphSaved: number;
  };
  readonly loadAverageStart: number[];
  readonly loadAverageEnd: number[];
}

async function benchCase(k: Case, threads: number, runs: number, memory: boolean, progress: (msg: string) => void): Promise<CaseResult> {
  const loadAverageStart = loadavg();
  const config = parseT5Config(T5_PRESETS[k.preset], `preset:${k.preset}`);
  const layout = FlatLayout.fromSpecs(t5ParamSpecs(config));
  const params = initT5Flat(config, layout, 1);
  if (k.scaleHead) {
    const head = layout.view(params, 'lm_head.weight');
    const scale = config.dModel ** -0.5;
    for (let i = 0; i < head.length; i++) head[i]! *= scale;
  }
  const grad = new Float32Array(layout.totalSize);
  const batch: Seq2SeqBatch = randomBatch(config, k.batch, k.srcLen, k.tgtLen);
  const sink = (lo: number, _hi: number, g: Float32Array | Float64Array) => grad.set(g, lo);

  progress(`${k.name}: creating the engines (load ${fmtLoad(loadavg())})`);
  const createMs = {} as Record<Setting, number>;
  const t0 = performance.now();
  const whole = await T5Engine.create(config, { dtype: 'float32', dropout: false, intraOpThreads: threads });
  createMs.whole = performance.now() - t0;
  const made = async (checkpointing: boolean, s: Setting) => {
    const t = performance.now();
    const e = await BlockEngine.create(new T5Family(config), { dtype: 'float32', dropout: false, checkpointing, intraOpThreads: threads });
    createMs[s] = performance.now() - t;
    return e;
  };
  const blockOff = await made(false, 'block-off');
  const blockOn = await made(true, 'block-on');

  const steps: Record<Setting, () => Promise<{ lossSum: number }>> = {
    whole: () => whole.forwardBackward(params, grad, batch),
    'block-off': () => blockOff.forwardBackward(params, batch, undefined, sink),
    'block-on': () => blockOn.forwardBackward(params, batch, undefined, sink),
  };
  // Warm-up, one each, then round-robin; the tap counts what the block engines' forward keeps
  // (warm-up step) and the time spent inside session.run (timed steps).
  const loss = {} as Record<Setting, number>;
  const warm = { whole: newTap(), 'block-off': newTap(), 'block-on': newTap() };
  const timed = { whole: newTap(), 'block-off': newTap(), 'block-on': newTap() };
  let current: StepTap | null = null;
  const restore = tapSessionRuns(() => current);
  const ms: Record<Setting, number[]> = { whole: [], 'block-off': [], 'block-on': [] };
  try {
    for (const s of SETTINGS) {
      progress(`${k.name}: warm-up ${s}`);
      current = warm[s];
      loss[s] = (await steps[s]()).lossSum;
    }
    for (let i = 0; i < runs; i++) {
      for (const s of SETTINGS) {
        current = timed[s];
        const t = performance.now();
        await steps[s]();
        ms[s].push(performance.now() - t);
      }
      current = null;
      progress(`${k.name}: run ${i + 1}/${runs}: ${SETTINGS.map((s) => `${s} ${ms[s].at(-1)!.toFixed(0)} ms`).join(', ')} (load ${fmtLoad(loadavg())})`);
    }
  } finally {
    restore();
  }
  const keptOff = warm['block-off'];
  const keptOn = warm['block-on'];
  const sessionMs = Object.fromEntries(SETTINGS.map((s) => [s, { forward: timed[s].forwardMs / runs, total: timed[s].sessionMs / runs }])) as CaseResult['sessionMs'];
  await whole.release();
  await blockOff.release();
  await blockOn.release();
  const step = { whole: timing(ms.whole), 'block-off': timing(ms['block-off']), 'block-on': timing(ms['block-on']) };

  let mem: CaseResult['memory'] = null;
  if (memory) {
    mem = {} as NonNullable<CaseResult['memory']>;
    for (const s of SETTINGS) {
      progress(`${k.name}: peak RSS in a child process, ${s}`);
      const r = await measureStepMemory(
        { preset: k.preset, srcLen: k.srcLen, tgtLen: k.tgtLen, batch: k.batch, phase: 'train', memoryArena: true, memoryPattern: false, engine: s, steps: 2 },
        threads,
      );
      mem[s] = { ...r, aboveParamsMiB: r.peakMiB - r.initMiB };
    }
  }

  const d = config.dModel;
  // Hidden states and the encoder output, plus each stack's attention bias: [1, heads, len, len].
  const formula = (((config.numEncoderLayers + 2) * k.batch * k.srcLen + (config.numDecoderLayers + 1) * k.batch * k.tgtLen) * d + config.numHeads * (k.srcLen ** 2 + k.tgtLen ** 2)) * 4;
  const wholeSaved = savedActivations(config, { batch: k.batch, src_len: k.srcLen, tgt_len: k.tgtLen }, false);
  return {
    name: k.name,
    params: layout.totalSize,
    loss,
    createMs,
    step,
    recomputeRatio: step['block-on'].medianMs / step['block-off'].medianMs,
    recomputeRatioOfMins: step['block-on'].minMs / step['block-off'].minMs,
    blockVsWhole: step['block-off'].medianMs / step.whole.medianMs,
    blockVsWholeOfMins: step['block-off'].minMs / step.whole.minMs,
    sessionMs,
    memory: mem,
    keptMiB: {
      checkpointInputs: keptOn.blockOutputs / MiB,
      checkpointInputsFormula: formula / MiB,
      savedActivations: keptOff.saved / MiB,
      savedValues: keptOff.savedValues,
      savedTotal: (keptOff.blockOutputs + keptOff.saved) / MiB,
      wholeGraphSaved: wholeSaved.totalMiB,
    },
    loadAverageStart,
    loadAverageEnd: loadavg(),
  };
}

const fmtLoad = (l: readonly number[]) => l.map((x) => x.toFixed(2)).join(' ');

function printTable(results: readonly CaseResult[]): void {
  const f = (x: number, digits = 1) => x.toFixed(digits);
  const t = (x: Timing) => `${f(x.medianMs, 0)} (${f(x.minMs, 0)})`;
  const mem = (cell: (m: NonNullable<CaseResult['memory']>) => string) => (r: CaseResult) => (r.memory ? cell(r.memory) : '-');
  const rows: [string, (r: CaseResult) => string][] = [
    ['parameters', (r) => r.params.toLocaleString('en-US')],
    ['loss sum whole / off / on', (r) => SETTINGS.map((s) => r.loss[s].toFixed(3)).join(' / ')],
    ['engine create ms whole / off / on', (r) => SETTINGS.map((s) => f(r.createMs[s], 0)).join(' / ')],
    ['F+B ms median (fastest): whole', (r) => t(r.step.whole)],
    ['  block, checkpointing off', (r) => t(r.step['block-off'])],
    ['  block, checkpointing on', (r) => t(r.step['block-on'])],
    ['recompute cost on/off (ideal ~1.33)', (r) => `${f(r.recomputeRatio, 2)} (${f(r.recomputeRatioOfMins, 2)})`],
    ['block(off) / whole', (r) => `${f(r.blockVsWhole, 2)} (${f(r.blockVsWholeOfMins, 2)})`],
    ['mean ms in session.run (fwd runs)', (r) => SETTINGS.map((s) => `${f(r.sessionMs[s].total, 0)}${s === 'whole' ? '' : ` (${f(r.sessionMs[s].forward, 0)})`}`).join(' / ')],
    ['RSS after params (MiB) whole/off/on', mem((m) => SETTINGS.map((s) => f(m[s].initMiB, 0)).join(' / '))],
    ['peak RSS (MiB): whole', mem((m) => f(m.whole.peakMiB, 0))],
    ['  block, checkpointing off', mem((m) => f(m['block-off'].peakMiB, 0))],
    ['  block, checkpointing on', mem((m) => f(m['block-on'].peakMiB, 0))],
    ['F+B peak above params (MiB): whole', mem((m) => f(m.whole.aboveParamsMiB, 0))],
    ['  block, checkpointing off', mem((m) => f(m['block-off'].aboveParamsMiB, 0))],
    ['  block, checkpointing on', mem((m) => f(m['block-on'].aboveParamsMiB, 0))],
    ['kept F->B, ckpt on: block inputs MiB', (r) => `${f(r.keptMiB.checkpointInputs)} (formula ${f(r.keptMiB.checkpointInputsFormula)})`],
    ['kept F->B, ckpt off: saved acts MiB', (r) => `${f(r.keptMiB.savedActivations)} (${r.keptMiB.savedValues} values)`],
    ['  + block inputs', (r) => f(r.keptMiB.savedTotal)],
    ['whole graph: saved for backward MiB', (r) => f(r.keptMiB.wholeGraphSaved)],
    ['load average start -> end', (r) => `${fmtLoad(r.loadAverageStart)} -> ${fmtLoad(r.loadAverageEnd)}`],
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
        case: { type: 'string' },
        runs: { type: 'string' },
        threads: { type: 'string', default: '2' },
        'skip-memory': { type: 'boolean', default: false },
      },
      strict: true,
    }).values;
  } catch (e) {
    console.error(`${(e as Error).message}\nusage: node dist/bench/block-engine.js [--case NAME-PART] [--runs N] [--threads N] [--skip-memory]`);
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
  const loadAverageStart = loadavg();
  console.log(`kp-coord block engine bench: node ${process.version}, onnxruntime-node ${ort.env.versions.node}, ${cpus().length} cpus, ${threads} intra-op threads, float32, dropout off`);
  console.log(`load average at start: ${fmtLoad(loadAverageStart)} (other busy processes make every number below worse)`);

  const cases = CASES.filter((c) => !args.case || c.name.includes(args.case));
  if (cases.length === 0) {
    console.error(`no case matches '${args.case}': ${CASES.map((c) => c.name).join(', ')}`);
    return 2;
  }
  const results: CaseResult[] = [];
  for (const c of cases) results.push(await benchCase(c, threads, runs ?? c.runs, !args['skip-memory'], progress));
  const loadAverageEnd = loadavg();

  console.log('');
  printTable(results);
  console.log('');
  for (const r of results) {
    console.log(`${r.name}: recompute cost ratio block(ckpt on) / block(ckpt off) = ${r.recomputeRatio.toFixed(2)} (medians; fastest runs ${r.recomputeRatioOfMins.toFixed(2)}; ideal about 4/3); block(off) / whole = ${r.blockVsWhole.toFixed(2)} (fastest ${r.blockVsWholeOfMins.toFixed(2)})`);
  }
  console.log(`load average at end: ${fmtLoad(loadAverageEnd)}`);
  console.log('');
  console.log(`BENCH_BLOCK_ENGINE ${JSON.stringify({ threads, loadAverageStart, loadAverageEnd, cases: results })}`);
  return 0;
}

process.exitCode = await main();
