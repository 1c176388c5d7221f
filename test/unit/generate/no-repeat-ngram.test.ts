import test from 'node:test';
import assert from 'node:assert/strict';
import { bannedNgramTokens } from '../../../shared/generate/logits-processors.js';
import { T5Generator } from '../../../shared/generate/t5-generator.js';
import { hasRepeatedNgram, SOURCES, tinyModel } from './generate-helpers.js';

test('banned tokens follow HF NoRepeatNGramLogitsProcessor', () => {
  // n = 2: the last token 3 was followed by 4 and by 7 before.
  assert.deepEqual(bannedNgramTokens([0, 3, 4, 3, 7, 3], 2).sort(), [4, 7]);
  // n = 3: prefix (3, 4) occurred once, followed by 5.
  assert.deepEqual(bannedNgramTokens([0, 3, 4, 5, 3, 4], 3), [5]);
  // n = 1: every token seen, the start token included (HF counts the decoder input).
  assert.deepEqual(bannedNgramTokens([0, 3, 4], 1).sort(), [0, 3, 4]);
  // Too short to complete an n-gram (cur_len + 1 < n), or off.
  assert.deepEqual(bannedNgramTokens([0, 3], 4), []);
  assert.deepEqual(bannedNgramTokens([0, 3, 3], 0), []);
  assert.deepEqual(bannedNgramTokens([0, 3, 3], 2), [3]);
});

test('no_repeat_ngram_size: no n-gram repeats in any output; the outputs change where greedy repeated', async () => {
  const m = tinyModel();
  const gen = await T5Generator.create(m.config, m.flat, { intraOpThreads: 1 });
  const start = m.config.decoderStartTokenId;
  try {
    for (const numBeams of [1, 3]) {
      const free = await gen.generate(SOURCES, { maxNewTokens: 20, numBeams });
      // Row 1 falls into a loop without the constraint (greedy: a 5-token cycle): the case it must change.
      assert.ok(hasRepeatedNgram([start, ...free[1]!], 2) && hasRepeatedNgram([start, ...free[1]!], 3), `beams ${numBeams}: unconstrained output repeats: ${free[1]}`);
      for (const n of [2, 3]) {
        const out = await gen.generate(SOURCES, { maxNewTokens: 20, numBeams, noRepeatNgramSize: n });
        out.forEach((t, i) => assert.ok(!hasRepeatedNgram([start, ...t], n), `beams ${numBeams}, n ${n}, row ${i} repeats: ${t}`));
        assert.notDeepEqual(out[1], free[1], `beams ${numBeams}, n ${n}`);
        // Greedy rows that never repeated are left alone (no ban ever hit their argmax).
        if (numBeams === 1) assert.deepEqual([out[0], out[2]], [free[0], free[2]]);
      }
    }
  } finally {
    await gen.release();
  }
});
