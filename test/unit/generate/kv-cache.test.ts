import test from 'node:test';
import assert from 'node:assert/strict';
import { beamSearch } from '../../../shared/generate/beam-search.js';
import { parseGenerateOptions } from '../../../shared/generate/generate-options.js';
import { greedySearch, type GeneratedSequence } from '../../../shared/generate/greedy-search.js';
import { T5Generator } from '../../../shared/generate/t5-generator.js';
import { RecordingStepper, SOURCES, tinyModel } from './generate-helpers.js';

// Decoding with the key/value cache must equal decoding without it (the decoder re-run over the
// whole prefix each step), token for token, greedy and beam 3, including the cache reordering of
// beam search and rows leaving the batch.
//
// Tolerance on the step outputs (log-probabilities), 1e-4 absolute: with a cache each step is one query against stored keys (a
// [1, t] score row, matmuls of one position); without, all t positions are recomputed at once.
// Same float32 math in another order: differences of a few float32 roundoffs (6e-8) of the
// magnitudes involved (|logits| up to ~40), ~1e-5 measured; the first step (past_len 0, fed as
// zero-size tensors) computes exactly the same thing both ways and must agree bit for bit.
const LOGIT_TOLERANCE = 1e-4;

async function decode(gen: T5Generator, beams: number, useCache: boolean): Promise<{ out: GeneratedSequence[]; outputs: Float32Array[] }> {
  const o = parseGenerateOptions({ numBeams: beams, maxNewTokens: 14 });
  const stepper = new RecordingStepper(await gen.startBatch(SOURCES, beams, useCache));
  const out = beams === 1 ? await greedySearch(stepper, o, gen.specialTokens) : await beamSearch(stepper, o, gen.specialTokens);
  return { out, outputs: stepper.outputs };
}

for (const beams of [1, 3]) {
  test(`${beams === 1 ? 'greedy' : `beam ${beams}`}: key/value cache = no cache, token for token; log-probabilities within ${LOGIT_TOLERANCE}`, async () => {
    const m = tinyModel();
    const gen = await T5Generator.create(m.config, m.flat, { intraOpThreads: 1 });
    try {
      const cached = await decode(gen, beams, true);
      const uncached = await decode(gen, beams, false);
      assert.deepEqual(cached.out.map((s) => s.tokens), uncached.out.map((s) => s.tokens));
      assert.equal(cached.outputs.length, uncached.outputs.length);
      assert.deepEqual(cached.outputs[0], uncached.outputs[0], 'step 0 (empty past) is the same computation');
      let worst = 0;
      cached.outputs.forEach((a, t) => {
        const b = uncached.outputs[t]!;
        assert.equal(a.length, b.length, `step ${t}: rows differ`);
        for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
      });
      assert.ok(worst <= LOGIT_TOLERANCE, `cache and no-cache outputs differ by ${worst}`);
      assert.ok(cached.outputs.length > 5, 'decoding ran for several steps');
      if (beams > 1) {
        for (let i = 0; i < SOURCES.length; i++) assert.ok(Math.abs(cached.out[i]!.score! - uncached.out[i]!.score!) < 1e-5, `scores of item ${i}`);
      }
    } finally {
      await gen.release();
    }
  });
}
