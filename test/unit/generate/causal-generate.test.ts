import test from 'node:test';
import assert from 'node:assert/strict';
import { beamSearch } from '../../../shared/generate/beam-search.js';
import { CausalGenerator } from '../../../shared/generate/causal-generator.js';
import { leftPad } from '../../../shared/generate/causal-stepper.js';
import { parseGenerateOptions } from '../../../shared/generate/generate-options.js';
import { greedySearch, type GeneratedSequence } from '../../../shared/generate/greedy-search.js';
import type { NeoXConfig } from '../../../shared/models/neox-config.js';
import { neoxParamSpecs } from '../../../shared/models/neox-params.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { argmax } from '../../../shared/generate/logits-processors.js';
import { randomValues, tinyNeoX, WholeModel } from '../models/neox-helpers.js';
import { RecordingStepper } from './generate-helpers.js';

// Decoder-only generation (CausalGenerator):
// - with the key/value cache = without it (the whole left-padded prompt + generated tokens re-run
//   each step), greedy and beam 3, token for token; step log-probabilities within 1e-4 (float32,
//   the same math in another order; the prefill is one run of [items] rows with the cache and of
//   [items * beams] rows without, so even step 0 may differ in the last bits); beam scores within 1e-5;
// - greedy on a hand-made model whose layers are zero (each position's hidden state is its token's
//   embedding) and whose head maps token t to t + 1, and 9 to eos: the continuation is known by hand;
// - NoRepeatNGram sees the prompt (HF's input_ids for a decoder-only model);
// - greedy (left-padded batch, cached) = argmax of the training graph's logits over each prompt
//   alone, unpadded, re-run per token (float32; an independent path through neox-graph.ts).

function flatOf(config: NeoXConfig, seed: number, std: number): { flat: Float32Array; layout: FlatLayout } {
  const specs = neoxParamSpecs(config);
  const layout = FlatLayout.fromSpecs(specs);
  const flat = new Float32Array(layout.totalSize);
  for (const [name, v] of randomValues(specs, seed, std)) layout.view(flat, name).set(v);
  return { flat, layout };
}

/** Prompts of different lengths (left padding of 0 to 5); eos is 1, pad 0. */
const PROMPTS: readonly Int32Array[] = [Int32Array.of(5, 6, 7, 8, 9, 10), Int32Array.of(20, 21), Int32Array.of(30, 31, 32, 33)];

async function decode(gen: CausalGenerator, beams: number, useCache: boolean): Promise<{ out: GeneratedSequence[]; outputs: Float32Array[] }> {
  const o = parseGenerateOptions({ numBeams: beams, maxNewTokens: 12 });
  const stepper = new RecordingStepper(gen.startBatch(PROMPTS, beams, useCache));
  const padded = leftPad(PROMPTS, gen.config.padTokenId);
  const prefixes = PROMPTS.map((_, i) => Array.from(padded.ids.subarray(i * padded.len, (i + 1) * padded.len)));
  const out = beams === 1 ? await greedySearch(stepper, o, gen.specialTokens, prefixes) : await beamSearch(stepper, o, gen.specialTokens, prefixes);
  return { out, outputs: stepper.outputs };
}

for (const beams of [1, 3]) {
  test(`causal ${beams === 1 ? 'greedy' : `beam ${beams}`}: key/value cache = no cache, token for token; log-probabilities within 1e-4`, async () => {
    // eos = pad = 0 (as polyglot-ko, whose pad is its eos): this model emits 0 now and then, so
    // items finish at different steps and leave the batch (select drops their cache rows).
    const config = tinyNeoX({ eos_token_id: 0 });
    const { flat } = flatOf(config, 7, 0.3);
    const gen = await CausalGenerator.create(config, flat, { intraOpThreads: 1 });
    try {
      const cached = await decode(gen, beams, true);
      const uncached = await decode(gen, beams, false);
      assert.deepEqual(cached.out.map((s) => s.tokens), uncached.out.map((s) => s.tokens));
      assert.equal(cached.outputs.length, uncached.outputs.length);
      let worst = 0;
      cached.outputs.forEach((a, t) => {
        const b = uncached.outputs[t]!;
        assert.equal(a.length, b.length, `step ${t}: rows differ`);
        for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
      });
      assert.ok(worst <= 1e-4, `cache and no-cache outputs differ by ${worst}`);
      assert.ok(cached.outputs.length >= 5, 'decoding ran for several steps');
      assert.ok(cached.outputs.at(-1)!.length < cached.outputs[0]!.length, 'items left the batch before the end');
      if (beams > 1) for (let i = 0; i < PROMPTS.length; i++) assert.ok(Math.abs(cached.out[i]!.score! - uncached.out[i]!.score!) < 1e-5, `scores of item ${i}`);
      // generate() is the same search (batch of all three: same padding).
      const direct = await gen.generate(PROMPTS, { numBeams: beams, maxNewTokens: 12 });
      assert.deepEqual(direct, cached.out.map((s) => s.tokens));
    } finally {
      await gen.release();
    }
  });
}

/**
 * Zero layers (attention and MLP add nothing: h = the token's embedding), embedding row t = one-hot
 * e_t (t < 32), final norm plain, head row t + 1 = e_t for t in 2..8 and the eos row (1) = e_9: the
 * argmax after token t is t + 1, and after 9 it is eos.
 */
function counterModel(): { config: NeoXConfig; flat: Float32Array } {
  const config = tinyNeoX();
  const { flat, layout } = flatOf(config, 1, 0);
  const H = config.hiddenSize;
  for (const name of ['gpt_neox.final_layer_norm.weight', ...Array.from({ length: config.numLayers }, (_, i) => [`gpt_neox.layers.${i}.input_layernorm.weight`, `gpt_neox.layers.${i}.post_attention_layernorm.weight`]).flat()]) {
    layout.view(flat, name).fill(1);
  }
  const embed = layout.view(flat, 'gpt_neox.embed_in.weight');
  for (let t = 0; t < H; t++) embed[t * H + t] = 1;
  const head = layout.view(flat, 'embed_out.weight');
  for (let t = 2; t <= 8; t++) head[(t + 1) * H + t] = 1;
  head[config.eosTokenId * H + 9] = 1;
  return { config, flat };
}

test('causal greedy, hand-checked: after t comes t + 1 and after 9 eos, left-padded rows alike; max_new_tokens cuts', async () => {
  const { config, flat } = counterModel();
  const gen = await CausalGenerator.create(config, flat, { intraOpThreads: 1 });
  try {
    for (const useCache of [true, false]) {
      const out = await gen.generate([Int32Array.of(20, 21, 4), Int32Array.of(7), Int32Array.of(30, 31, 32, 33, 9)], { maxNewTokens: 6, useCache });
      assert.deepEqual(out, [[5, 6, 7, 8, 9, 1], [8, 9, 1], [1]], `useCache ${useCache}`);
      const short = await gen.generate([Int32Array.of(2)], { maxNewTokens: 3, useCache });
      assert.deepEqual(short, [[3, 4, 5]]);
    }
    // Beam search: the counter's continuation (log p ~ -0.14 a token) beats every other hypothesis.
    const beam = await gen.generate([Int32Array.of(7)], { numBeams: 2, maxNewTokens: 6 });
    assert.deepEqual(beam, [[8, 9, 1]]);
  } finally {
    await gen.release();
  }
});

test('causal NoRepeatNGram sees the prompt, as HF for decoder-only models: a bigram of the prompt is not generated', async () => {
  const { config, flat } = counterModel();
  const gen = await CausalGenerator.create(config, flat, { intraOpThreads: 1 });
  try {
    // The prompt holds (5, 6): after 5, 6 is banned with no_repeat_ngram_size 2, so greedy takes another token.
    const [banned] = await gen.generate([Int32Array.of(5, 6, 20, 4)], { maxNewTokens: 3, noRepeatNgramSize: 2 });
    assert.equal(banned![0], 5);
    assert.notEqual(banned![1], 6);
    const [free] = await gen.generate([Int32Array.of(20, 4)], { maxNewTokens: 3, noRepeatNgramSize: 2 });
    assert.deepEqual(free, [5, 6, 7]);
  } finally {
    await gen.release();
  }
});

test('causal greedy = the argmax of the whole-model graph\'s last logits, each prompt alone and unpadded, token for token', async () => {
  const config = tinyNeoX({ eos_token_id: 0 });
  const { flat, layout } = flatOf(config, 7, 0.3);
  const gen = await CausalGenerator.create(config, flat, { intraOpThreads: 1 });
  const whole = await WholeModel.create(config, { logits: true, dtype: 'float32' });
  try {
    const got = await gen.generate(PROMPTS, { maxNewTokens: 8 });
    const values = new Map(layout.params.map((p) => [p.name, Float64Array.from(layout.view(flat, p.name))]));
    const expected = [];
    for (const prompt of PROMPTS) {
      const seq = Array.from(prompt);
      const out: number[] = [];
      for (let t = 0; t < 8; t++) {
        const n = seq.length;
        const batch = { kind: 'causal' as const, batchSize: 1, seqLen: n, inputIds: Int32Array.from(seq), attentionMask: new Int32Array(n).fill(1), labels: new Int32Array(n).fill(-100) };
        const logits = (await whole.run(values, batch)).logits!.data as Float32Array;
        const token = argmax(logits.subarray((n - 1) * config.vocabSize, n * config.vocabSize));
        out.push(token);
        if (token === config.eosTokenId) break;
        seq.push(token);
      }
      expected.push(out);
    }
    assert.deepEqual(got, expected);
    assert.ok(expected.some((e) => e.length > 3));
  } finally {
    await gen.release();
    await whole.release();
  }
});
