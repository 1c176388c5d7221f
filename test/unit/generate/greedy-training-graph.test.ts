import test from 'node:test';
import assert from 'node:assert/strict';
import { greedySearch } from '../../../shared/generate/greedy-search.js';
import { T5Generator } from '../../../shared/generate/t5-generator.js';
import { argmaxOf, logSoftmax, RecordingStepper, SOURCES, tinyModel, topMargin, trainingGraphLogits } from './generate-helpers.js';

// Greedy decoding (encoder graph once, decoder-step graph with the key/value cache) against the
// training graph: run buildT5Graph's `logits` with decoder_input_ids = [start, generated...] for the
// whole batch at once (causal attention makes position t see exactly the prefix the step saw), and
// the argmax at every position must be the token greedy chose there.
//
// Tolerance on the values, 1e-4 absolute between the step graph's log-probabilities and the log-
// softmax of the training logits: both graphs compute the same float32 math in a different order
// (one query against a cache vs all positions at once; other matmul shapes and fusions). Rounding
// differences are of the order of float32's unit roundoff (6e-8) times the magnitudes summed
// through 2+2 layers, a few 1e-7 of |logits| up to ~40, i.e. ~1e-5 (measured 1.2e-5 on the
// logits); 1e-4 leaves headroom yet sits far below the smallest top-2 gap we compare (asserted
// > 1e-2), so an argmax equality is not luck. Rows of 3, 2 and 1 sequences run through both forms
// of the step graph's linear layers (see linearWeightsFirst).
const LOGIT_TOLERANCE = 1e-4;
const MIN_MARGIN = 1e-2;

test('greedy output = repeated argmax of the training graph logits, token for token, on a padded batch', async () => {
  const m = tinyModel();
  const gen = await T5Generator.create(m.config, m.flat, { intraOpThreads: 1 });
  try {
    const stepper = new RecordingStepper(await gen.startBatch(SOURCES, 1, true));
    const out = (await greedySearch(stepper, { maxNewTokens: 16, minNewTokens: 0, noRepeatNgramSize: 0 }, gen.specialTokens)).map((s) => s.tokens);
    // The case exercises what matters: rows stop at different steps (and leave the batch), one runs to the limit.
    const eos = m.config.eosTokenId;
    const lengths = out.map((t) => t.length);
    assert.ok(out.filter((t) => t.at(-1) === eos).length >= 2 && lengths.includes(16) && new Set(lengths).size === 3, `lengths ${lengths}`);

    const { logits, tgtLen } = await trainingGraphLogits(m, SOURCES, out);
    const V = m.config.vocabSize;
    let worst = 0;
    let active = out.map((_, i) => i);
    stepper.outputs.forEach((stepLogProbs, t) => {
      active.forEach((item, r) => {
        const training = logits.subarray((item * tgtLen + t) * V, (item * tgtLen + t + 1) * V);
        const step = stepLogProbs.subarray(r * V, (r + 1) * V);
        assert.ok(topMargin(training) > MIN_MARGIN, `row ${item} position ${t}: a near tie (${topMargin(training)}) makes the comparison meaningless`);
        assert.equal(argmaxOf(training), out[item]![t], `row ${item} position ${t}`);
        const trainingLogProbs = logSoftmax(training);
        for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(trainingLogProbs[v]! - step[v]!));
      });
      active = active.filter((item) => out[item]![t] !== eos);
    });
    assert.ok(worst <= LOGIT_TOLERANCE, `step log-probabilities differ from the training graph's by ${worst}`);

    // The public API gives the same tokens, whatever the batch size (padding does not leak).
    assert.deepEqual(await gen.generate(SOURCES, { maxNewTokens: 16 }), out);
    assert.deepEqual(await gen.generate(SOURCES, { maxNewTokens: 16, batchSize: 1 }), out);
  } finally {
    await gen.release();
  }
});

test('inputs are checked: empty, out-of-vocabulary and bad options are named', async () => {
  const m = tinyModel();
  const gen = await T5Generator.create(m.config, m.flat, { intraOpThreads: 1 });
  try {
    await assert.rejects(gen.generate([Int32Array.of(5, 1), Int32Array.of()]), /input 1 is empty/);
    await assert.rejects(gen.generate([Int32Array.of(5, 300, 1)]), /input 0: id 300 at position 1 is outside the vocabulary \(0\.\.258\)/);
    await assert.rejects(gen.generate([Int32Array.of(5, 1)], { numBeams: 0, maxNewTokens: -1 }), /numBeams.*maxNewTokens/);
    await assert.rejects(gen.generate([Int32Array.of(5, 1)], { minNewTokens: 10, maxNewTokens: 5 }), /minNewTokens 10 exceeds maxNewTokens 5/);
    // min_new_tokens forbids eos: every output has exactly maxNewTokens tokens and no eos before.
    const forced = await gen.generate(SOURCES, { maxNewTokens: 6, minNewTokens: 6 });
    for (const t of forced) assert.ok(t.length === 6 && !t.includes(m.config.eosTokenId), `${t}`);
  } finally {
    await gen.release();
  }
});
