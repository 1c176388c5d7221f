import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { CausalGenerator } from '../shared/generate/causal-generator.js';
import { NEOX_PRESETS, parseNeoXConfig } from '../shared/models/neox-config.js';
import { neoxParamSpecs } from '../shared/models/neox-params.js';
import { rngStream } from '../shared/random.js';
import { FlatLayout } from '../shared/weights/flat-layout.js';
import { initFlatRange } from '../shared/weights/init.js';
import { loads, printDecodeTiming, SHORT, timeDecodeSteps } from './decode-timing.js';

// `node dist/bench/neox-generate.js [--preset polyglot-ko-1.3b] [--prompt 1024] [--new-tokens 32]
// [--threads 2]`: greedy decoding with the key/value cache for a GPT-NeoX shape, random weights (the
// preset's seeded init; speed does not depend on the values once the lengths are fixed). One prompt
// of --prompt random token ids, decoded twice with exactly 8 and exactly --new-tokens new tokens
// (eos forbidden until then, HF's min_new_tokens): the difference is the cost of the extra steps
// alone, so tokens/s of the cached steps is printed apart from the prompt pass. Load average with
// each number. The last line is `BENCH_NEOX_GENERATE {json}`.

const { values: args } = parseArgs({
  options: {
    preset: { type: 'string', default: 'polyglot-ko-1.3b' },
    prompt: { type: 'string', default: '1024' },
    'new-tokens': { type: 'string', default: '32' },
    threads: { type: 'string', default: '2' },
  },
});
const preset = NEOX_PRESETS[args.preset];
if (!preset) throw new Error(`unknown NeoX preset ${args.preset} (${Object.keys(NEOX_PRESETS).join(', ')})`);
const promptLength = Number(args.prompt);
const newTokens = Number(args['new-tokens']);
if (!(newTokens > SHORT)) throw new Error(`--new-tokens must exceed ${SHORT}`);
const load = loads;

const config = parseNeoXConfig({ ...preset });
const specs = neoxParamSpecs(config);
const layout = FlatLayout.fromSpecs(specs);
const t0 = performance.now();
const flat = initFlatRange(specs, layout, 1, 0, layout.totalSize);
const initSeconds = (performance.now() - t0) / 1000;
const rng = rngStream(20261206, 7);
const prompt = Int32Array.from({ length: promptLength }, () => 3 + Math.floor(rng.uniform() * (Math.min(config.vocabSize, 30000) - 3)));
console.log(`${args.preset}: ${layout.totalSize} parameters (init ${initSeconds.toFixed(1)} s), prompt ${promptLength} tokens, greedy, KV cache, ${args.threads} threads; load ${load()}`);

const gen = await CausalGenerator.create(config, flat, { intraOpThreads: Number(args.threads) });
const decode = async (tokens: number) => {
  const start = performance.now();
  const [out] = await gen.generate([prompt], { numBeams: 1, maxNewTokens: tokens, minNewTokens: tokens });
  const seconds = (performance.now() - start) / 1000;
  if (out!.length !== tokens) throw new Error(`decoded ${out!.length} tokens, expected ${tokens}`);
  return seconds;
};
try {
  const timing = await timeDecodeSteps(decode, newTokens);
  const { short, long, stepSeconds } = timing;
  printDecodeTiming(timing, newTokens);
  console.log(`  cached step               ${(stepSeconds * 1000).toFixed(0)} ms -> ${(1 / stepSeconds).toFixed(2)} tokens/s; prompt pass + first token ~${(short - SHORT * stepSeconds).toFixed(2)} s; whole ${newTokens}-token decode ${(newTokens / long).toFixed(2)} tokens/s; load ${load()}`);
  console.log(`BENCH_NEOX_GENERATE ${JSON.stringify({ preset: args.preset, parameters: layout.totalSize, prompt: promptLength, newTokens, threads: Number(args.threads), short, long, stepSeconds, tokensPerSecondSteps: 1 / stepSeconds, tokensPerSecondWhole: newTokens / long, load: load() })}`);
} finally {
  await gen.release();
}
