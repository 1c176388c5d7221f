import test from 'node:test';
import assert from 'node:assert/strict';
import { BartGenerator } from '../../../shared/generate/bart-generator.js';
import { processorSettings, processScores } from '../../../shared/generate/logits-processors.js';
import type { BartConfigInput } from '../../../shared/models/bart-config.js';
import { BART_SOURCES, referenceOf, tinyBart, type TinyBart } from './bart-helpers.js';
import { logSoftmax } from './generate-helpers.js';

// HF's generation defaults for BART: decoding starts at decoder_start_token_id; the config's
// forced_bos_token_id is the only token allowed first (ForcedBOSTokenLogitsProcessor at cur_len 1),
// its forced_eos_token_id the only one allowed at cur_len = max_length - 1, where generate() sets
// max_length = max_new_tokens + 1 (the decoder start): the max_new_tokens-th new token. A forced
// token scores 0 (the row is -inf but for it), which beam search adds to the beam's sum. And
// no_repeat_ngram_size bans n-grams of the decoder sequence ([start, generated...]) only.
//
// The decoding checks compare with a greedy search written here on the float64 reference model
// (bart-reference.ts), applying the rules as stated above (not through logits-processors.ts).

const MAX_NEW = 8;
const FORCED_BOS = 65;

test('processScores: forced BOS at the first new token, forced EOS at the max_new_tokens-th, over min_new_tokens and no-repeat bans', () => {
  const vocab = 10;
  const row = () => Float32Array.from({ length: vocab }, (_, i) => -1 - i / 10);
  const special = { decoderStartId: 2, eosId: 2, padId: 0, forcedBosId: 7, forcedEosId: 2 };
  const s = processorSettings({ noRepeatNgramSize: 1, minNewTokens: 5, maxNewTokens: 4 }, special);
  const forcedTo = (token: number) => Float32Array.from({ length: vocab }, (_, i) => (i === token ? 0 : -Infinity));

  // generated 0: BOS 7 is forced although no-repeat (n = 1) bans nothing yet and eos is banned.
  const first = row();
  processScores(first, [2], 0, s);
  assert.deepEqual(first, forcedTo(7));
  // generated 3 = max_new_tokens - 1: eos is forced although min_new_tokens (5) and no-repeat ban it (it is the start token).
  const last = row();
  processScores(last, [2, 7, 4, 5], 3, s);
  assert.deepEqual(last, forcedTo(2));
  // In between: only the bans (tokens seen, eos under min_new_tokens), the other scores untouched.
  const middle = row();
  processScores(middle, [2, 7, 4], 1, s);
  const expected = row();
  for (const t of [2, 7, 4]) expected[t] = -Infinity;
  assert.deepEqual(middle, expected);
  // Unset (T5, GPT-NeoX): nothing is forced.
  const plain = row();
  processScores(plain, [2], 0, processorSettings({ noRepeatNgramSize: 0, minNewTokens: 0, maxNewTokens: 1 }, { decoderStartId: 2, eosId: 2, padId: 0 }));
  assert.deepEqual(plain, row());
});

/** Does [...seq, token] end in an n-gram already in seq? (written out here, independently of bannedNgramTokens). */
function repeatsNgram(seq: readonly number[], token: number, n: number): boolean {
  if (n === 0 || seq.length < n - 1) return false;
  const tail = [...seq.slice(seq.length - (n - 1)), token].join(',');
  for (let i = 0; i + n <= seq.length; i++) if (seq.slice(i, i + n).join(',') === tail) return true;
  return false;
}

/** Greedy search on the float64 reference with the HF rules applied by hand; new tokens per source. */
function referenceGreedy(m: TinyBart, noRepeat: number): number[][] {
  const ref = referenceOf(m);
  const c = m.config;
  return BART_SOURCES.map((src) => {
    const encoded = ref.encode(Array.from(src));
    const seq = [c.decoderStartTokenId];
    for (let step = 0; step < MAX_NEW; step++) {
      let token: number;
      if (step === 0 && c.forcedBosTokenId !== null) token = c.forcedBosTokenId;
      else if (step === MAX_NEW - 1 && c.forcedEosTokenId !== null) token = c.forcedEosTokenId;
      else {
        const logits = ref.decode(encoded, seq).at(-1)!;
        token = -1;
        logits.forEach((v, t) => {
          if (!repeatsNgram(seq, t, noRepeat) && (token < 0 || v > logits[token]!)) token = t;
        });
      }
      seq.push(token);
      if (token === c.eosTokenId) break;
    }
    return seq.slice(1);
  });
}

async function withGenerator<T>(overrides: Partial<BartConfigInput>, run: (gen: BartGenerator, m: TinyBart) => Promise<T>): Promise<T> {
  const m = tinyBart(2, 16, overrides);
  const gen = await BartGenerator.create(m.config, m.flat, { intraOpThreads: 1 });
  try {
    return await run(gen, m);
  } finally {
    await gen.release();
  }
}

test('greedy: forced BOS first and forced EOS at max_new_tokens, as a greedy search on the float64 reference applying HF\'s rules', async () => {
  await withGenerator({ forced_bos_token_id: FORCED_BOS, forced_eos_token_id: 1 }, async (gen, m) => {
    const out = await gen.generate(BART_SOURCES, { maxNewTokens: MAX_NEW });
    assert.deepEqual(out, referenceGreedy(m, 0));
    for (const t of out) {
      assert.equal(t[0], FORCED_BOS);
      assert.equal(t.at(-1), m.config.eosTokenId, 'every output ends at eos: the model\'s or the forced one');
    }
    // At least one output was cut by the forced eos (the unforced model would not end it there).
    const free = await withGenerator({ forced_bos_token_id: FORCED_BOS, forced_eos_token_id: null }, (g) => g.generate(BART_SOURCES, { maxNewTokens: MAX_NEW }));
    assert.ok(free.some((t, i) => t.at(-1) !== m.config.eosTokenId && out[i]!.length === MAX_NEW), `unforced: ${JSON.stringify(free)}`);
  });
});

test('no_repeat_ngram_size over the decoder sequence only, with forced tokens: the reference greedy with the same bans', async () => {
  await withGenerator({ forced_bos_token_id: FORCED_BOS, forced_eos_token_id: 1 }, async (gen, m) => {
    const plain = await gen.generate(BART_SOURCES, { maxNewTokens: MAX_NEW });
    const banned = await gen.generate(BART_SOURCES, { maxNewTokens: MAX_NEW, noRepeatNgramSize: 2 });
    assert.deepEqual(banned, referenceGreedy(m, 2));
    assert.notDeepEqual(banned, plain, 'the outputs repeated bigrams without the ban');
  });
});

test('beam search: forced BOS and EOS in every hypothesis; sequence scores count the forced tokens as log-probability 0', async () => {
  await withGenerator({ forced_bos_token_id: FORCED_BOS, forced_eos_token_id: 1 }, async (gen, m) => {
    const out = await gen.generateWithScores(BART_SOURCES, { maxNewTokens: MAX_NEW, numBeams: 3 });
    const ref = referenceOf(m);
    const start = m.config.decoderStartTokenId;
    out.forEach(({ tokens, score }, i) => {
      assert.equal(tokens[0], FORCED_BOS);
      assert.equal(tokens.at(-1), m.config.eosTokenId);
      // HF: sum of the processed log-probabilities / length ** length_penalty (1), forced ones 0.
      const logits = ref.decode(ref.encode(Array.from(BART_SOURCES[i]!)), [start, ...tokens.slice(0, -1)]);
      let sum = 0;
      tokens.forEach((t, step) => {
        const forced = step === 0 || step === MAX_NEW - 1;
        if (!forced) sum += logSoftmax(Float32Array.from(logits[step]!))[t]!;
      });
      // Up to MAX_NEW log-probabilities, each within 1e-4 of the float64 reference (bart-decode-graph.test.ts).
      assert.ok(Math.abs(score! - sum / tokens.length) <= MAX_NEW * 1e-4, `item ${i}: score ${score} vs reference ${sum / tokens.length}`);
    });
  });
});
