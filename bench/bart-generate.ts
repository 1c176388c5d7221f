import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { BartGenerator } from '../shared/generate/bart-generator.js';
import { BART_PRESETS, parseBartConfig } from '../shared/models/bart-config.js';
import { bartGenerationSpecs } from '../shared/models/bart-encoder-graph.js';
import { rngStream } from '../shared/random.js';
import { FlatLayout } from '../shared/weights/flat-layout.js';
import { initFlatRange } from '../shared/weights/init.js';
import { loads, printDecodeTiming, SHORT, timeDecodeSteps } from './decode-timing.js';

// `node dist/bench/bart-generate.js [--preset kobart-news] [--source 512] [--new-tokens 32]
// [--beams 1] [--threads 2] [--no-cache]`: decoding speed for a BART shape, random weights (the
// preset's seeded init; speed does not depend on the values once the lengths are fixed). One
// article of --source random token ids (eos last), decoded twice with exactly 8 and exactly
// --new-tokens new tokens (eos forbidden until the last, HF's min_new_tokens; the config's forced
// eos lands on the last): the difference is the cost of the extra decoder steps alone, printed
// apart from the encoder pass. --no-cache re-runs the decoder over the whole prefix every step
// (HF use_cache=False) for the cache's ratio. Load average with each number (the machine may be
// shared). The last line is `BENCH_BART_GENERATE {json}`.

const { values: args } = parseArgs({
  options: {
    preset: { type: 'string', default: 'kobart-news' },
    source: { type: 'string', default: '512' },
    'new-tokens': { type: 'string', default: '32' },
    beams: { type: 'string', default: '1' },
    threads: { type: 'string', default: '2' },
    'no-cache': { type: 'boolean', default: false },
  },
});
const preset = BART_PRESETS[args.preset];
if (!preset) throw new Error(`unknown BART preset ${args.preset} (${Object.keys(BART_PRESETS).join(', ')})`);
const sourceLength = Number(args.source);
const newTokens = Number(args['new-tokens']);
const beams = Number(args.beams);
const useCache = !args['no-cache'];
if (!(newTokens > SHORT)) throw new Error(`--new-tokens must exceed ${SHORT}`);
const load = loads;

const config = parseBartConfig({ ...preset });
const specs = bartGenerationSpecs(config);
const layout = FlatLayout.fromSpecs(specs);
const t0 = performance.now();
const flat = initFlatRange(specs, layout, 1, 0, layout.totalSize);
const initSeconds = (performance.now() - t0) / 1000;
const rng = rngStream(20261206, 7);
const firstOrdinary = Math.max(config.padTokenId, config.eosTokenId, config.bosTokenId) + 1;
const source = Int32Array.from({ length: sourceLength }, (_, i) => (i === sourceLength - 1 ? config.eosTokenId : firstOrdinary + Math.floor(rng.uniform() * (config.vocabSize - firstOrdinary))));
console.log(`${args.preset}: ${layout.totalSize} values: parameters and final_logits_bias (init ${initSeconds.toFixed(1)} s), source ${sourceLength} tokens, ${beams === 1 ? 'greedy' : `${beams} beams`}, ${useCache ? 'KV cache' : 'no cache'}, ${args.threads} threads; load ${load()}`);

const gen = await BartGenerator.create(config, flat, { intraOpThreads: Number(args.threads) });
const decode = async (tokens: number) => {
  const start = performance.now();
  const [out] = await gen.generate([source], { numBeams: beams, maxNewTokens: tokens, minNewTokens: tokens - 1, useCache });
  const seconds = (performance.now() - start) / 1000;
  if (out!.length !== tokens) throw new Error(`decoded ${out!.length} tokens, expected ${tokens}`);
  return seconds;
};
try {
  const timing = await timeDecodeSteps(decode, newTokens);
  const { short, long, stepSeconds } = timing;
  printDecodeTiming(timing, newTokens);
  console.log(`  decoder step (mean of steps ${SHORT + 1}..${newTokens})  ${(stepSeconds * 1000).toFixed(0)} ms -> ${(1 / stepSeconds).toFixed(2)} tokens/s; encoder + first ${SHORT} steps ${short.toFixed(2)} s; whole ${newTokens}-token decode ${(newTokens / long).toFixed(2)} tokens/s; load ${load()}`);
  console.log(`BENCH_BART_GENERATE ${JSON.stringify({ preset: args.preset, source: sourceLength, newTokens, beams, useCache, threads: Number(args.threads), short, long, stepSeconds, tokensPerSecondSteps: 1 / stepSeconds, tokensPerSecondWhole: newTokens / long, load: load() })}`);
} finally {
  await gen.release();
}
