import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { assembleBatch } from '../shared/data/assemble-batch.js';
import { WorkerPoolEncoder, type BatchEncoder } from '../shared/data/batch-encoder.js';
import { openDataCache, type DataSplit } from '../shared/data/data-cache.js';
import { resolveRules } from '../shared/data/data-rules.js';
import { prepareData } from '../shared/data/prepare.js';
import { DistributedSampler, epochPadding } from '../shared/data/sampler.js';
import { writeSyntheticSet } from '../shared/data/synth.js';
import { loadTokenizer } from '../shared/tokenizer/load-tokenizer.js';
import type { Tokenizer } from '../shared/tokenizer/tokenizer.js';
import { parseT5Config } from '../shared/models/t5-config.js';
import { T5_PRESETS } from '../shared/models/presets.js';
import { t5ParamSpecs } from '../shared/models/t5-params.js';
import { FlatLayout } from '../shared/weights/flat-layout.js';
import { initT5Flat } from '../shared/weights/init.js';
import { T5Engine } from '../worker/engine/t5-engine.js';

// `node dist/bench/data.js [--train 76472] [--eval 3000] [--hf-rows 3000] [--threads 2]`:
//  1. synthesise the V4-sized set (lengths in byte tokens) and prepare it with the builtin
//     tokenizer in a child process: wall time and the child's peak RSS;
//  2. tokenisation speed against a plain read (read + UTF-8 + JSON.parse) of the same rows, in
//     the same run: builtin bytes on the whole set; polyglot-ko (when ../shared/data is beside the
//     repo) on the 2,000 real articles of korean-news-2k, inline and on a worker pool; then a
//     prepare of --hf-rows rows synthesised in polyglot-ko tokens, in a child;
//  3. batch assembly per step from the cache, and the padding share with and without bucketing.
// The last line is `BENCH_DATA {json}`.

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');
const SHARED_DATA = join(REPO, '..', 'shared', 'data');
const POLYGLOT = join(SHARED_DATA, 'polyglot-ko-tokenizer.json');
const NEWS = join(SHARED_DATA, 'korean-news-2k-unlabelled.jsonl');
const MiB = 1024 * 1024;

const { values: args } = parseArgs({
  options: {
    train: { type: 'string', default: '76472' },
    eval: { type: 'string', default: '3000' },
    'hf-rows': { type: 'string', default: '3000' },
    threads: { type: 'string', default: '2' },
    // Child mode: run one prepare and print its time and peak RSS.
    'child-prepare': { type: 'string' },
  },
});

interface ChildResult {
  readonly seconds: number;
  readonly maxRssMiB: number;
  readonly kept: { total: number; train: number; eval: number };
  readonly inputTokens: number;
}

async function childPrepare(json: string): Promise<void> {
  const o = JSON.parse(json) as { train: string; eval: string; tokenizer: string; out: string; threads: number; rules: Record<string, unknown> };
  const tokenizer = loadTokenizer(o.tokenizer);
  const started = performance.now();
  const encoder = o.threads > 1 ? await WorkerPoolEncoder.start(o.tokenizer, tokenizer.fingerprint, o.threads) : undefined;
  try {
    const report = await prepareData({
      inputs: [o.train],
      evalFiles: [o.eval],
      tokenizer,
      tokenizerSpec: o.tokenizer,
      rules: resolveRules('v4', [o.rules]),
      outDir: o.out,
      ...(encoder ? { encoder } : {}),
    });
    const inputTokens = (report.lengths.train?.input.mean ?? 0) * report.kept.train + (report.lengths.eval?.input.mean ?? 0) * report.kept.eval;
    const r: ChildResult = { seconds: (performance.now() - started) / 1000, maxRssMiB: process.resourceUsage().maxRSS / 1024, kept: report.kept, inputTokens };
    process.stdout.write(`${JSON.stringify(r)}\n`);
  } finally {
    await encoder?.close();
  }
}

function runChild(o: Record<string, unknown>): ChildResult {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child-prepare', JSON.stringify(o)], { encoding: 'utf8', maxBuffer: 64 * MiB });
  if (r.status !== 0) throw new Error(`prepare child failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as ChildResult;
}

/** The input texts of a title/body JSONL file, and the time a plain read of it takes (read + UTF-8 + JSON.parse). */
function plainRead(file: string, limit = Infinity): { texts: string[]; seconds: number; bytes: number } {
  const started = performance.now();
  const lines = readFileSync(file, 'utf8').split('\n');
  const texts: string[] = [];
  let bytes = 0;
  for (const line of lines) {
    if (line === '' || texts.length >= limit) continue;
    bytes += Buffer.byteLength(line) + 1;
    const r = JSON.parse(line) as { title: string; body: string };
    texts.push(`generate keyphrases: ${r.title} ${r.body}`);
  }
  return { texts, seconds: (performance.now() - started) / 1000, bytes };
}

interface Throughput {
  readonly tokens: number;
  readonly seconds: number;
  readonly tokensPerSecond: number;
  readonly mbPerSecond: number;
}

async function tokenise(texts: readonly string[], bytes: number, encode: (batch: string[]) => Promise<number>): Promise<Throughput> {
  const started = performance.now();
  let tokens = 0;
  const pending: Array<Promise<number>> = [];
  for (let i = 0; i < texts.length; i += 256) {
    pending.push(encode(texts.slice(i, i + 256)));
    if (pending.length >= 8) tokens += await pending.shift()!;
  }
  for (const p of pending) tokens += await p;
  const seconds = (performance.now() - started) / 1000;
  return { tokens, seconds, tokensPerSecond: tokens / seconds, mbPerSecond: bytes / MiB / seconds };
}

const inline = (t: Tokenizer) => (batch: string[]): Promise<number> => Promise.resolve(batch.reduce((n, s) => n + t.encode(s).length, 0));
const pooled = (pool: BatchEncoder) => async (batch: string[]): Promise<number> => (await pool.encode(batch)).ids.length;

interface AssemblyResult {
  readonly steps: number;
  readonly msPerStepRank0: number;
  readonly msPerStepAllRanks: number;
  readonly paddingShare: number;
  readonly samplerEpochMs: number;
}

function assembly(split: DataSplit, padId: number, bucketing: boolean): AssemblyResult {
  const lengths = Int32Array.from({ length: split.size }, (_, i) => split.inputLength(i));
  // The team's shape: 6 ranks, 8 samples per device, no accumulation -> G = 48.
  const o = { size: split.size, seed: 100, perDeviceBatch: 8, gradAccum: 1, world: 6 };
  let started = performance.now();
  const sampler = new DistributedSampler(bucketing ? { ...o, bucketing: { windowBatches: 50, lengths } } : o);
  sampler.epochOrder(0);
  const samplerEpochMs = performance.now() - started;
  const steps = sampler.stepsPerEpoch;
  let sink = 0;
  // Warm-up: let the JIT compile the assembly loop before timing it.
  for (let step = 0; step < Math.min(steps, 20); step++) for (const mb of sampler.microBatches(0, step, 0)) sink += assembleBatch(split, mb, padId).srcLen;
  started = performance.now();
  for (let step = 0; step < steps; step++) for (const mb of sampler.microBatches(0, step, 0)) sink += assembleBatch(split, mb, padId).srcLen;
  const rank0 = performance.now() - started;
  started = performance.now();
  for (let step = 0; step < steps; step++) {
    for (let r = 0; r < sampler.world; r++) for (const mb of sampler.microBatches(0, step, r)) sink += assembleBatch(split, mb, padId).srcLen;
  }
  const all = performance.now() - started;
  if (sink < 0) throw new Error('unreachable');
  return { steps, msPerStepRank0: rank0 / steps, msPerStepAllRanks: all / steps, paddingShare: epochPadding(sampler, 0, lengths).paddingShare, samplerEpochMs };
}

const fmt = (n: number, d = 1): string => n.toFixed(d);

async function engineStep(split: DataSplit, padId: number): Promise<{ ms: number; srcLen: number; tgtLen: number }> {
  const config = parseT5Config(T5_PRESETS['t5-small-bytes']);
  const params = initT5Flat(config, FlatLayout.fromSpecs(t5ParamSpecs(config)), 0);
  const engine = await T5Engine.create(config, { intraOpThreads: 2 });
  try {
    const grad = new Float32Array(engine.paramCount);
    const sampler = new DistributedSampler({ size: split.size, seed: 100, perDeviceBatch: 8, gradAccum: 1, world: 1 });
    const mb = sampler.microBatches(0, 0, 0)[0]!;
    const batch = assembleBatch(split, mb, padId);
    await engine.forwardBackward(params, grad, batch); // warm-up: the arena grows on the first runs
    await engine.forwardBackward(params, grad, batch);
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await engine.forwardBackward(params, grad, batch);
      times.push(performance.now() - t0);
    }
    return { ms: Math.min(...times), srcLen: batch.srcLen, tgtLen: batch.tgtLen };
  } finally {
    await engine.release();
  }
}

async function main(): Promise<void> {
  if (args['child-prepare'] !== undefined) return childPrepare(args['child-prepare']);
  const train = Number(args.train);
  const evalRows = Number(args.eval);
  const hfRows = Number(args['hf-rows']);
  const threads = Number(args.threads);
  const dir = mkdtempSync(join(tmpdir(), 'kp-bench-data-'));
  const result: Record<string, unknown> = { loadavg: loadavg()[0] };
  try {
    console.log(`load average ${fmt(loadavg()[0]!, 2)} (other processes share the 2 cores; ratios below are from one run)`);
    // 1. the V4-sized synthetic set in byte tokens, prepared with the builtin tokenizer
    const bytes = loadTokenizer('builtin');
    const synthTrain = join(dir, 'synth.jsonl');
    const synthEval = join(dir, 'synth.eval.jsonl');
    const synth = await writeSyntheticSet({ trainOut: synthTrain, evalOut: synthEval, train, eval: evalRows, seed: 1, tokenizer: bytes });
    const fileMiB = (statSync(synthTrain).size + statSync(synthEval).size) / MiB;
    console.log(`synth: ${train} + ${evalRows} rows, ${fmt(fileMiB)} MiB, input mean ${synth.input_tokens.mean} byte tokens, ${synth.seconds} s`);
    // Byte tokens: 10 phrases are ~100-150 bytes, so the V4 target limit (64) is raised; inputs keep V4's 500..1000.
    const builtinPrepare = runChild({ train: synthTrain, eval: synthEval, tokenizer: 'builtin', out: join(dir, 'cache-bytes'), threads: 1, rules: { max_target_tokens: 256 } });
    console.log(
      `prepare (builtin): ${builtinPrepare.kept.total} rows kept in ${fmt(builtinPrepare.seconds, 2)} s ` +
        `(${fmt(builtinPrepare.kept.total / builtinPrepare.seconds, 0)} rows/s, ${fmt(builtinPrepare.inputTokens / builtinPrepare.seconds / 1e6, 2)} M input tokens/s), peak RSS ${fmt(builtinPrepare.maxRssMiB, 0)} MiB`,
    );
    result.synth = synth;
    result.prepare_builtin = builtinPrepare;

    // 2. tokenisation against a plain read of the same rows
    const read = plainRead(synthTrain);
    const tokB = await tokenise(read.texts, read.bytes, inline(bytes));
    console.log(
      `builtin tokenise: ${fmt(tokB.tokensPerSecond / 1e6, 2)} M tokens/s (${fmt(tokB.mbPerSecond)} MiB/s) vs plain read ${fmt(read.bytes / MiB / read.seconds)} MiB/s: ` +
        `tokenise/read time ratio ${fmt(tokB.seconds / read.seconds, 2)}`,
    );
    result.tokenise_builtin = { ...tokB, read_mb_per_s: read.bytes / MiB / read.seconds, time_ratio_vs_read: tokB.seconds / read.seconds };

    if (existsSync(POLYGLOT)) {
      const hf = loadTokenizer(POLYGLOT);
      // Real news: synthetic text repeats its words more, so BPE's word cache flatters it.
      const hfRead = plainRead(NEWS);
      const tokH = await tokenise(hfRead.texts, hfRead.bytes, inline(hf));
      const pool = await WorkerPoolEncoder.start(POLYGLOT, hf.fingerprint, threads);
      let tokP: Throughput;
      try {
        tokP = await tokenise(hfRead.texts, hfRead.bytes, pooled(pool));
      } finally {
        await pool.close();
      }
      console.log(
        `polyglot-ko tokenise (${hfRead.texts.length} real articles): inline ${fmt(tokH.tokensPerSecond / 1e3, 0)} k tokens/s (${fmt(tokH.mbPerSecond, 2)} MiB/s), ` +
          `${threads} threads ${fmt(tokP.tokensPerSecond / 1e3, 0)} k tokens/s; plain read ${fmt(hfRead.bytes / MiB / hfRead.seconds)} MiB/s: ` +
          `tokenise/read time ratio ${fmt(tokH.seconds / hfRead.seconds, 0)} inline, ${fmt(tokP.seconds / hfRead.seconds, 0)} pooled`,
      );
      const hfTrain = join(dir, 'hf.jsonl');
      const hfEval = join(dir, 'hf.eval.jsonl');
      const evalPart = Math.max(1, Math.round(hfRows / 20));
      await writeSyntheticSet({ trainOut: hfTrain, evalOut: hfEval, train: hfRows - evalPart, eval: evalPart, seed: 2, tokenizer: hf });
      const hfPrepare = runChild({ train: hfTrain, eval: hfEval, tokenizer: POLYGLOT, out: join(dir, 'cache-hf'), threads, rules: {} });
      const perRow = hfPrepare.seconds / hfPrepare.kept.total;
      // Extrapolations, not measurements: synthetic text tokenises faster than news (more BPE cache hits).
      const v4Tokens = (train + evalRows) * 725;
      console.log(
        `prepare (polyglot-ko, ${threads} threads): ${hfPrepare.kept.total} synthetic rows in ${fmt(hfPrepare.seconds, 1)} s ` +
          `(${fmt(hfPrepare.inputTokens / hfPrepare.seconds / 1e3, 0)} k input tokens/s), peak RSS ${fmt(hfPrepare.maxRssMiB, 0)} MiB; ` +
          `${train + evalRows} rows extrapolated: ~${fmt((perRow * (train + evalRows)) / 60, 1)} min of synthetic text, ` +
          `~${fmt(v4Tokens / tokP.tokensPerSecond / 60, 1)} min of real news at the pooled rate`,
      );
      result.tokenise_polyglot = { inline: tokH, pooled: tokP, threads, read_mb_per_s: hfRead.bytes / MiB / hfRead.seconds };
      result.prepare_polyglot = hfPrepare;
    } else {
      console.log(`polyglot-ko tokenizer not found at ${POLYGLOT}: BPE figures skipped`);
    }

    // 3. batch assembly and padding
    const cache = openDataCache(join(dir, 'cache-bytes'));
    for (const bucketing of [false, true]) {
      const a = assembly(cache.train, cache.manifest.tokenizer.pad_id, bucketing);
      console.log(
        `assembly ${bucketing ? 'bucketed' : 'random  '}: ${a.steps} steps of 48 (8 x 6 ranks); per step ${fmt(a.msPerStepRank0, 3)} ms for one rank, ` +
          `${fmt(a.msPerStepAllRanks, 3)} ms for all 6; padding share ${fmt(a.paddingShare * 100, 1)}%; epoch order ${fmt(a.samplerEpochMs, 1)} ms`,
      );
      result[bucketing ? 'assembly_bucketed' : 'assembly_random'] = a;
    }
    // 4. the engine's step on the same kind of micro-batch (8 samples of the byte-token cache,
    // the embedded default model), so assembly time reads as a share of a real step.
    const step = await engineStep(cache.train, cache.manifest.tokenizer.pad_id);
    const bucketed = result.assembly_bucketed as AssemblyResult;
    console.log(
      `engine step (t5-small-bytes, F+B, 8 x ${step.srcLen}/${step.tgtLen} byte tokens): ${fmt(step.ms, 0)} ms; ` +
        `assembly / engine step = ${(bucketed.msPerStepRank0 / step.ms).toExponential(2)}`,
    );
    result.engine_step = { ...step, assembly_ratio: bucketed.msPerStepRank0 / step.ms };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`BENCH_DATA ${JSON.stringify(result)}`);
}

await main();
