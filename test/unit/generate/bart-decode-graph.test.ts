import test from 'node:test';
import assert from 'node:assert/strict';
import { BartGenerator } from '../../../shared/generate/bart-generator.js';
import type { BartConfigInput } from '../../../shared/models/bart-config.js';
import { beamSearch } from '../../../shared/generate/beam-search.js';
import { parseGenerateOptions } from '../../../shared/generate/generate-options.js';
import { greedySearch, type GeneratedSequence } from '../../../shared/generate/greedy-search.js';
import { BART_SOURCES, bartTrainingLogits, referenceOf, tinyBart } from './bart-helpers.js';
import { argmaxOf, logSoftmax, RecordingStepper, topMargin } from './generate-helpers.js';

// BART decoding (encoder graph once, decoder-step graph with the key/value cache) against two
// references at every step of a padded greedy batch: the float64 JS BartForConditionalGeneration of
// bart-reference.ts (written from HF's modeling_bart, not from the layer functions), run on each
// item alone over [decoder_start, generated...], and the training graph's logits (buildBartGraph,
// decoder inputs shift_tokens_right(labels)). Then cache = no cache (the decoder re-run over the
// whole prefix, HF use_cache=False), token for token, greedy and beam 3.
//
// Tolerance on the step's log-probabilities, 1e-4 absolute, against both references. Against the
// float64 reference: the graph computes in float32, whose unit roundoff (6e-8) times the magnitudes
// carried through an embedding norm, 2+2 post-LN layers and a log-softmax over logits of tens gives
// ~1e-5 (measured 1.5e-5; the test prints it). Against the training graph: the same float32 math
// in another order (one query against cached keys vs all positions at once), the same size of
// differences (measured 1.3e-5). Either way 1e-4 sits far below the top-2 gap
// every compared position must have (> 1e-2, asserted), so an argmax equality is not luck.
const LOG_PROB_TOLERANCE = 1e-4;
const MIN_MARGIN = 1e-2;
const MAX_NEW = 12;

// bart-tiny's shape (scale_embedding false, tied head, as kobart-news), then embeddings scaled by
// sqrt(d_model) with an untied lm_head (facebook/bart-* switches), each against both references.
const VARIANTS: readonly { readonly name: string; readonly overrides: Partial<BartConfigInput> }[] = [
  { name: 'bart-tiny', overrides: {} },
  { name: 'scale_embedding, untied lm_head', overrides: { scale_embedding: true, tie_word_embeddings: false } },
];

for (const variant of VARIANTS) test(`${variant.name}: greedy with the cache, every step = the float64 reference and the training graph (log-probs within 1e-4, argmax = token chosen)`, async () => {
  // No forced eos here: the references' argmax is compared at every step, the last one included.
  const m = tinyBart(2, 16, { forced_eos_token_id: null, ...variant.overrides });
  const gen = await BartGenerator.create(m.config, m.flat, { intraOpThreads: 1 });
  try {
    const stepper = new RecordingStepper(await gen.startBatch(BART_SOURCES, 1, true));
    const out = (await greedySearch(stepper, parseGenerateOptions({ maxNewTokens: MAX_NEW }), gen.specialTokens)).map((s) => s.tokens);
    // The case exercises what matters: rows stop at different steps (leaving the batch), one runs to the limit.
    const eos = m.config.eosTokenId;
    const lengths = out.map((t) => t.length);
    if (variant.name === 'bart-tiny') assert.ok(out.some((t) => t.at(-1) === eos) && lengths.includes(MAX_NEW) && new Set(lengths).size >= 2, `lengths ${lengths}: ${JSON.stringify(out)}`);

    const ref = referenceOf(m);
    const { logits, tgtLen } = await bartTrainingLogits(m, BART_SOURCES, out);
    const V = m.config.vocabSize;
    const start = m.config.decoderStartTokenId;
    let worstRef = 0;
    let worstTraining = 0;
    let active = out.map((_, i) => i);
    const refLogits = out.map((tokens, i) => ref.decode(ref.encode(Array.from(BART_SOURCES[i]!)), [start, ...tokens.slice(0, -1)]));
    stepper.outputs.forEach((stepLogProbs, t) => {
      active.forEach((item, r) => {
        const step = stepLogProbs.subarray(r * V, (r + 1) * V);
        const reference = Float32Array.from(refLogits[item]![t]!);
        assert.ok(topMargin(reference) > MIN_MARGIN, `item ${item} position ${t}: a near tie (${topMargin(reference)})`);
        assert.equal(argmaxOf(reference), out[item]![t], `item ${item} position ${t}: reference argmax`);
        const refLogProbs = logSoftmax(reference);
        const training = logSoftmax(logits.subarray((item * tgtLen + t) * V, (item * tgtLen + t + 1) * V));
        for (let v = 0; v < V; v++) {
          worstRef = Math.max(worstRef, Math.abs(refLogProbs[v]! - step[v]!));
          worstTraining = Math.max(worstTraining, Math.abs(training[v]! - step[v]!));
        }
      });
      active = active.filter((item) => out[item]![t] !== eos);
    });
    assert.ok(worstRef <= LOG_PROB_TOLERANCE, `step log-probabilities differ from the float64 reference by ${worstRef}`);
    assert.ok(worstTraining <= LOG_PROB_TOLERANCE, `step log-probabilities differ from the training graph by ${worstTraining}`);
    console.log(`# ${variant.name}: worst |step - reference| ${worstRef.toExponential(2)}, |step - training graph| ${worstTraining.toExponential(2)}`);

    // The public API gives the same tokens whatever the batch size (padding does not leak).
    assert.deepEqual(await gen.generate(BART_SOURCES, { maxNewTokens: MAX_NEW }), out);
    assert.deepEqual(await gen.generate(BART_SOURCES, { maxNewTokens: MAX_NEW, batchSize: 1 }), out);
  } finally {
    await gen.release();
  }
});

async function decode(gen: BartGenerator, beams: number, useCache: boolean): Promise<{ out: GeneratedSequence[]; outputs: Float32Array[] }> {
  const o = parseGenerateOptions({ numBeams: beams, maxNewTokens: MAX_NEW });
  const stepper = new RecordingStepper(await gen.startBatch(BART_SOURCES, beams, useCache));
  const out = beams === 1 ? await greedySearch(stepper, o, gen.specialTokens) : await beamSearch(stepper, o, gen.specialTokens);
  return { out, outputs: stepper.outputs };
}

for (const beams of [1, 3]) {
  test(`${beams === 1 ? 'greedy' : `beam ${beams}`}: key/value cache = no cache, token for token; log-probabilities within ${LOG_PROB_TOLERANCE}`, async () => {
    const m = tinyBart();
    const gen = await BartGenerator.create(m.config, m.flat, { intraOpThreads: 1 });
    try {
      const cached = await decode(gen, beams, true);
      const uncached = await decode(gen, beams, false);
      assert.deepEqual(cached.out.map((s) => s.tokens), uncached.out.map((s) => s.tokens));
      assert.equal(cached.outputs.length, uncached.outputs.length);
      assert.ok(cached.outputs.length > 5, 'decoding ran for several steps');
      // Step 0 (empty past, fed as zero-size tensors) is the same computation both ways.
      assert.deepEqual(cached.outputs[0], uncached.outputs[0]);
      let worst = 0;
      cached.outputs.forEach((a, t) => {
        const b = uncached.outputs[t]!;
        assert.equal(a.length, b.length, `step ${t}: rows differ`);
        for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
      });
      assert.ok(worst <= LOG_PROB_TOLERANCE, `cache and no-cache outputs differ by ${worst}`);
      // Beam sums add up to MAX_NEW log-probabilities, each within the tolerance.
      if (beams > 1) BART_SOURCES.forEach((_, i) => assert.ok(Math.abs(cached.out[i]!.score! - uncached.out[i]!.score!) <= MAX_NEW * LOG_PROB_TOLERANCE, `scores of item ${i}`));
    } finally {
      await gen.release();
    }
  });
}

test('inputs are checked: empty, out-of-vocabulary, past the position tables', async () => {
  const m = tinyBart(2, 16, { max_position_embeddings: 8 });
  const gen = await BartGenerator.create(m.config, m.flat, { intraOpThreads: 1 });
  try {
    const short = { maxNewTokens: 4 };
    await assert.rejects(gen.generate([Int32Array.of(5, 1), Int32Array.of()], short), /input 1 is empty/);
    await assert.rejects(gen.generate([Int32Array.of(5, 300, 1)], short), /input 0: id 300 at position 1 is outside the vocabulary \(0\.\.258\)/);
    await assert.rejects(gen.generate([Int32Array.from({ length: 9 }, () => 5)], short), /input 0 has 9 tokens, more than the model's 8 positions/);
    await assert.rejects(gen.generate([Int32Array.of(5, 1)], { maxNewTokens: 9 }), /maxNewTokens 9 exceeds the model's 8 decoder positions/);
    // At the limits both tables are used to their last row.
    const [out] = await gen.generate([Int32Array.from({ length: 8 }, (_, i) => (i === 7 ? 1 : 40 + i))], { maxNewTokens: 8, minNewTokens: 7 });
    assert.equal(out!.length, 8);
  } finally {
    await gen.release();
  }
});
