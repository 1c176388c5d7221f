import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { EMBEDDED_SAMPLE_FILE } from '../shared/config/run-config.js';
import { resolveRules } from '../shared/data/data-rules.js';
import { beamSearch } from '../shared/generate/beam-search.js';
import { parseGenerateOptions } from '../shared/generate/generate-options.js';
import { readGenerationRows } from '../shared/generate/generation-rows.js';
import { greedySearch } from '../shared/generate/greedy-search.js';
import { T5Generator } from '../shared/generate/t5-generator.js';
import { T5_PRESETS } from '../shared/models/presets.js';
import { parseT5Config, type T5Config } from '../shared/models/t5-config.js';
import { t5ParamSpecs } from '../shared/models/t5-params.js';
import { rngStream } from '../shared/random.js';
import { ByteTokenizer } from '../shared/tokenizer/byte-tokenizer.js';
import { FlatLayout } from '../shared/weights/flat-layout.js';
import { initT5Flat } from '../shared/weights/init.js';

// `node dist/bench/generate.js [--skip-base] [--threads N] [--articles N] [--new-tokens N]
// [--base-new-tokens N] [--repeats N]`: generation speed in one run, random weights (speed does not depend on
// them once the length is fixed):
//   1. the embedded model shape (preset t5-small-bytes) on the shipped sample's first N articles
//      (byte tokens, training's prefix), one batch, greedy and beam 5;
//   2. the pko-t5-base shape on ONE article of 500 random tokens, greedy and beam 5.
// Every run generates exactly --new-tokens tokens per article (eos is forbidden until then, HF's
// min_new_tokens), so all runs decode the same number of steps and their times compare. Each run
// is timed with the key/value cache and without it (the decoder re-run over the whole prefix each
// step) and the ratio printed. Times include the encoder, which is timed apart as well; with
// --repeats N each is the fastest of N runs (other processes on the cores only ever add time).
// The last line is `BENCH_GENERATE {json}` for CI logs.

const SEED = 20261128;
const BASE_SOURCE_TOKENS = 500;

interface Run {
  readonly model: string;
  readonly articles: number;
  readonly sourceTokens: number;
  readonly beams: number;
  readonly newTokens: number;
  readonly cache: { readonly seconds: number; readonly encodeSeconds: number };
  readonly noCache: { readonly seconds: number; readonly encodeSeconds: number };
  readonly load: number;
}

function randomFlat(config: T5Config): { flat: Float32Array; initSeconds: number } {
  const t0 = performance.now();
  const flat = initT5Flat(config, FlatLayout.fromSpecs(t5ParamSpecs(config)), SEED);
  return { flat, initSeconds: (performance.now() - t0) / 1000 };
}

/** One decoding of the batch with `beams`, forced to `newTokens` tokens; encoder and total time. */
async function decodeOnce(gen: T5Generator, inputs: readonly Int32Array[], beams: number, newTokens: number, useCache: boolean): Promise<{ seconds: number; encodeSeconds: number }> {
  const o = parseGenerateOptions({ numBeams: beams, maxNewTokens: newTokens, minNewTokens: newTokens, useCache, batchSize: inputs.length });
  const t0 = performance.now();
  const stepper = await gen.startBatch(inputs, beams, useCache);
  const t1 = performance.now();
  const out = beams === 1 ? await greedySearch(stepper, o, gen.specialTokens) : await beamSearch(stepper, o, gen.specialTokens);
  const t2 = performance.now();
  if (out.some((s) => s.tokens.length !== newTokens)) throw new Error(`a sequence has ${out.map((s) => s.tokens.length)} tokens, expected ${newTokens}`);
  return { seconds: (t2 - t0) / 1000, encodeSeconds: (t1 - t0) / 1000 };
}

async function benchModel(
  label: string,
  config: T5Config,
  flat: Float32Array,
  inputs: readonly Int32Array[],
  newTokens: number,
  threads: number,
  repeats: number,
): Promise<Run[]> {
  const gen = await T5Generator.create(config, flat, { intraOpThreads: threads });
  const fastest = async (beams: number, useCache: boolean) => {
    let best = await decodeOnce(gen, inputs, beams, newTokens, useCache);
    for (let i = 1; i < repeats; i++) {
      const t = await decodeOnce(gen, inputs, beams, newTokens, useCache);
      if (t.seconds < best.seconds) best = t;
    }
    return best;
  };
  const runs: Run[] = [];
  try {
    // Warm-up: session creation for both beam counts and the memory arena's growth.
    await decodeOnce(gen, inputs, 1, 4, true);
    await decodeOnce(gen, inputs, 5, 4, true);
    for (const beams of [1, 5]) {
      progress(`${label}: beams ${beams}, key/value cache`);
      const cache = await fastest(beams, true);
      progress(`${label}: beams ${beams}, no cache`);
      const noCache = await fastest(beams, false);
      runs.push({ model: label, articles: inputs.length, sourceTokens: Math.round(inputs.reduce((n, x) => n + x.length, 0) / inputs.length), beams, newTokens, cache, noCache, load: loadavg()[0]! });
    }
  } finally {
    await gen.release();
  }
  return runs;
}

function progress(text: string): void {
  process.stderr.write(`  ${text}\n`);
}

function printRuns(runs: readonly Run[]): void {
  const header = ['model', 'articles x src tokens', 'beams', 'new tokens', 'encoder s', 'total s', 'tokens/s', 'articles/s', 'ms/step', 'no-cache s', 'no-cache / cache', 'load'];
  const rows = runs.map((r) => {
    const tokens = r.articles * r.newTokens;
    const steps = (r.cache.seconds - r.cache.encodeSeconds) / r.newTokens;
    return [
      r.model,
      `${r.articles} x ${r.sourceTokens}`,
      String(r.beams),
      String(r.newTokens),
      r.cache.encodeSeconds.toFixed(3),
      r.cache.seconds.toFixed(3),
      (tokens / r.cache.seconds).toFixed(1),
      (r.articles / r.cache.seconds).toFixed(3),
      (steps * 1000).toFixed(1),
      r.noCache.seconds.toFixed(3),
      (r.noCache.seconds / r.cache.seconds).toFixed(2),
      r.load.toFixed(2),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (row: readonly string[]) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      'skip-base': { type: 'boolean', default: false },
      threads: { type: 'string', default: '2' },
      articles: { type: 'string', default: '8' },
      'new-tokens': { type: 'string', default: '64' },
      'base-new-tokens': { type: 'string', default: '64' },
      repeats: { type: 'string', default: '2' },
    },
  });
  const int = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
    return n;
  };
  const threads = int('threads', values.threads);
  const articles = int('articles', values.articles);
  const newTokens = int('new-tokens', values['new-tokens']);
  const baseNewTokens = int('base-new-tokens', values['base-new-tokens']);
  const repeats = int('repeats', values.repeats);
  const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
  const started = performance.now();
  console.log(`kp-coord generate bench: node ${process.version}, onnxruntime-node ${ort.env.versions.node}, ${cpus().length} cpus, ${threads} intra-op threads, float32, random weights, best of ${repeats}`);
  console.log(`load average at start: ${load()} (other busy processes make every number below worse)`);

  // 1. The embedded model on the shipped articles, as `kp-coord generate` would feed them.
  const small = parseT5Config(T5_PRESETS['t5-small-bytes']!);
  const tok = new ByteTokenizer();
  const rows = (await readGenerationRows(EMBEDDED_SAMPLE_FILE, resolveRules('v4'))).slice(0, articles);
  const smallInputs = rows.map((r) => Int32Array.from([...tok.encode(r.inputText), tok.eosId]));
  const smallInit = randomFlat(small);
  const runs = await benchModel('t5-small-bytes', small, smallInit.flat, smallInputs, newTokens, threads, repeats);

  // 2. pko-t5-base, one article of 500 tokens (ids drawn uniformly; speed does not depend on them).
  let baseInitSeconds: number | null = null;
  if (!values['skip-base']) {
    const base = parseT5Config(T5_PRESETS['pko-t5-base']!);
    progress(`pko-t5-base: initialising ${(FlatLayout.fromSpecs(t5ParamSpecs(base)).totalSize / 1e6).toFixed(0)}M parameters`);
    const init = randomFlat(base);
    baseInitSeconds = init.initSeconds;
    const r = rngStream(SEED, 0x6e6);
    const ids = Int32Array.from({ length: BASE_SOURCE_TOKENS }, (_, i) => (i === BASE_SOURCE_TOKENS - 1 ? base.eosTokenId : 3 + Math.floor(r.uniform() * (base.vocabSize - 3))));
    runs.push(...(await benchModel('pko-t5-base', base, init.flat, [ids], baseNewTokens, threads, repeats)));
  }

  console.log('');
  printRuns(runs);
  console.log('');
  console.log('tokens/s = articles x new tokens / total time (encoder included); ms/step = decoder time / new tokens;');
  console.log('no-cache / cache = time without the key/value cache over time with it (same tokens, same steps).');
  console.log(`random init: t5-small-bytes ${smallInit.initSeconds.toFixed(2)} s${baseInitSeconds !== null ? `, pko-t5-base ${baseInitSeconds.toFixed(1)} s` : ''}; load average at end: ${load()}; ${((performance.now() - started) / 1000).toFixed(0)} s in all`);
  console.log(`BENCH_GENERATE ${JSON.stringify({ threads, repeats, runs })}`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench/generate: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
