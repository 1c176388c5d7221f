import test from 'node:test';
import assert from 'node:assert/strict';
import { beamSearch } from '../../../shared/generate/beam-search.js';
import type { DecoderStepper } from '../../../shared/generate/decoder-stepper.js';
import { parseGenerateOptions, type GenerateOptionsInput } from '../../../shared/generate/generate-options.js';
import { greedySearch } from '../../../shared/generate/greedy-search.js';
import { topIndices } from '../../../shared/generate/logits-processors.js';
import { T5Generator } from '../../../shared/generate/t5-generator.js';
import { SOURCES, tinyModel, trainingGraphLogits } from './generate-helpers.js';

const SPECIAL = { decoderStartId: 0, eosId: 1, padId: 0 };

test('topIndices = the first k of a stable descending sort (ties: lower index first; NaN last)', () => {
  const values = Float64Array.from([3, -1, 7, 7, NaN, -Infinity, 2, 7, 0.5, 3]);
  const key = values.map((v) => (Number.isNaN(v) ? -Infinity : v));
  // (-inf) - (-inf) is NaN, which || turns into the index order.
  const sorted = [...values.keys()].sort((a, b) => key[b]! - key[a]! || a - b);
  for (const k of [1, 3, 4, 6, 9, 10]) assert.deepEqual(topIndices(values, k), sorted.slice(0, k), `k = ${k}`);
});

test('beam search with one beam equals greedy (cache and no cache, with and without no_repeat_ngram)', async () => {
  const m = tinyModel();
  const gen = await T5Generator.create(m.config, m.flat, { intraOpThreads: 1 });
  try {
    for (const useCache of [true, false]) {
      for (const noRepeatNgramSize of [0, 2]) {
        const o = parseGenerateOptions({ maxNewTokens: 16, noRepeatNgramSize });
        const greedy = await greedySearch(await gen.startBatch(SOURCES, 1, useCache), o, gen.specialTokens);
        const beam = await beamSearch(await gen.startBatch(SOURCES, 1, useCache), o, gen.specialTokens);
        assert.deepEqual(beam.map((s) => s.tokens), greedy.map((s) => s.tokens), `cache ${useCache}, no-repeat ${noRepeatNgramSize}`);
      }
    }
  } finally {
    await gen.release();
  }
});

/**
 * Beam search returns the highest-scoring hypothesis. A 4-token vocabulary (pad/start 0, eos 1,
 * 2, 3) and sequences of at most L = 3 tokens: the candidates are every eos-terminated sequence of
 * length 1..3 and every 3-token sequence cut at the limit, each scored sum(log p) / length (length
 * penalty 1, length = tokens generated, eos included). Their log-probabilities come from the
 * training graph (all 16 two-token prefixes in one batch; causal attention gives every position's
 * next-token distribution). With K = 36 beams, every real prefix survives each step (at most
 * 3^2 x 4 = 36 real candidates), so with early_stopping='never' the search is exhaustive and must
 * return the exhaustive optimum.
 * Tolerance: scores are float64 sums of float32 log-softmax values from two graphs whose logits
 * differ by ~1e-5 (see greedy-training-graph.test.ts); 1e-4 covers three such terms, and the best
 * candidate must lead the second by more than that for the check to mean anything.
 */
test('beam search (K >= all prefixes, early_stopping never) returns the exhaustive optimum', async () => {
  const L = 3;
  const m = tinyModel(4, 1, { vocab_size: 4 });
  const source = Int32Array.of(2, 3, 3, 2, 1);
  const gen = await T5Generator.create(m.config, m.flat, { intraOpThreads: 1 });
  try {
    const V = 4;
    const prefixes: number[][] = [];
    for (let a = 0; a < V; a++) for (let b = 0; b < V; b++) prefixes.push([a, b, 2]);
    const { logits, tgtLen } = await trainingGraphLogits(m, prefixes.map(() => source), prefixes);
    const logProb = (row: number, t: number, token: number): number => {
      const x = logits.subarray((row * tgtLen + t) * V, (row * tgtLen + t + 1) * V);
      const max = Math.max(...x);
      return x[token]! - max - Math.log(x.reduce((s, v) => s + Math.exp(v - max), 0));
    };
    const candidates: { tokens: number[]; score: number }[] = [];
    const walk = (tokens: number[], sum: number): void => {
      for (let token = 0; token < V; token++) {
        const row = tokens.length === 0 ? 0 : tokens.length === 1 ? tokens[0]! * V : tokens[0]! * V + tokens[1]!;
        const next = [...tokens, token];
        const s = sum + logProb(row, tokens.length, token);
        if (token === SPECIAL.eosId || next.length === L) candidates.push({ tokens: next, score: s / next.length });
        else walk(next, s);
      }
    };
    walk([], 0);
    candidates.sort((a, b) => b.score - a.score);
    assert.equal(candidates.length, 1 + 3 + 9 + 27);
    assert.ok(candidates[0]!.score - candidates[1]!.score > 1e-4, 'the optimum is unique');

    const [best] = await gen.generateWithScores([source], { numBeams: 36, maxNewTokens: L, earlyStopping: 'never' });
    assert.deepEqual(best!.tokens, candidates[0]!.tokens);
    assert.ok(Math.abs(best!.score! - candidates[0]!.score) < 1e-4, `score ${best!.score} vs ${candidates[0]!.score}`);
    // Fewer beams search less: whatever they return is a real candidate with its true score.
    for (const numBeams of [2, 4]) {
      const [b] = await gen.generateWithScores([source], { numBeams, maxNewTokens: L });
      const same = candidates.find((c) => c.tokens.join() === b!.tokens.join());
      assert.ok(same && Math.abs(same.score - b!.score!) < 1e-4, `beams ${numBeams}: ${b!.tokens}`);
    }
  } finally {
    await gen.release();
  }
});

/**
 * A stepper with scripted next-token probabilities: p(token | generated so far) from a table, the
 * rest of the mass spread over the other tokens. Checks HF's stopping rules on a case where they
 * disagree (K = 2, vocabulary pad 0, eos 1, a 2, b 3):
 *   step 1: eos .40, a .35, b .25           -> [eos] finishes: -0.916
 *   step 2: after a: a .7, eos .3; after b: eos .6, a .4
 *           candidates a a -1.407, b eos -1.897 (rank 1 < K: finishes, -0.948), a eos, b a
 *           -> two hypotheses: early_stopping=true stops here and returns [eos];
 *              false: best running -1.407 / 2 = -0.70 > worst -0.948, so it goes on
 *   step 3: after a a: eos .9 -> a a eos -1.512 / 3 = -0.504, the best: false returns it.
 */
class ScriptedStepper implements DecoderStepper {
  private history: number[][];
  readonly calls: number[] = [];
  constructor(
    readonly beams: number,
    private readonly table: Readonly<Record<string, Readonly<Record<number, number>>>>,
    public items = 1,
  ) {
    this.history = Array.from({ length: items * beams }, () => []);
  }
  next(tokens: Int32Array): Promise<Float32Array> {
    this.calls.push(tokens.length);
    const V = 4;
    const out = new Float32Array(tokens.length * V);
    this.history.forEach((h, r) => {
      if (h.length > 0 || tokens[r] !== 0) h.push(tokens[r]!);
      const probs = this.table[h.join(' ')] ?? {};
      const listed = Object.values(probs).reduce((s, p) => s + p, 0);
      const unlisted = [0, 1, 2, 3].filter((t) => !(t in probs));
      for (let t = 0; t < V; t++) out[r * V + t] = Math.log(probs[t] ?? Math.max(1e-6, (1 - listed) / unlisted.length));
    });
    return Promise.resolve(out);
  }
  select(items: ArrayLike<number>, rows: ArrayLike<number>): void {
    this.items = items.length;
    this.history = Array.from(rows, (r) => [...this.history[r]!]);
  }
}

const SCRIPT = {
  '': { 1: 0.4, 2: 0.35, 3: 0.25 },
  '2': { 2: 0.7, 1: 0.3 },
  '3': { 1: 0.6, 2: 0.4 },
  '2 2': { 1: 0.9, 2: 0.1 },
};

async function scripted(o: GenerateOptionsInput): Promise<{ tokens: number[]; score: number | null }> {
  const [best] = await beamSearch(new ScriptedStepper(2, SCRIPT), parseGenerateOptions({ numBeams: 2, maxNewTokens: 4, ...o }), SPECIAL);
  return best!;
}

test('HF stopping rules: early_stopping true stops at K hypotheses; false and never look further', async () => {
  const early = await scripted({ earlyStopping: true });
  assert.deepEqual(early.tokens, [1]);
  assert.ok(Math.abs(early.score! - Math.log(0.4)) < 1e-5);
  for (const earlyStopping of [false, 'never'] as const) {
    const best = await scripted({ earlyStopping });
    assert.deepEqual(best.tokens, [2, 2, 1], `early_stopping ${earlyStopping}`);
    assert.ok(Math.abs(best.score! - (Math.log(0.35) + Math.log(0.7) + Math.log(0.9)) / 3) < 1e-5);
  }
  // length_penalty 0 scores by the sum alone: [eos] (log .4 = -0.92) beats a a eos (-1.51).
  assert.deepEqual((await scripted({ lengthPenalty: 0 })).tokens, [1]);
  // At max_new_tokens the top beams are scored as they stand, without eos: a a (-1.407 / 2) wins.
  const cut = await scripted({ maxNewTokens: 2 });
  assert.deepEqual(cut.tokens, [2, 2]);
  assert.ok(Math.abs(cut.score! - (Math.log(0.35) + Math.log(0.7)) / 2) < 1e-5);
});

test('items that finish leave the batch: later steps feed fewer rows', async () => {
  // Item 0 follows SCRIPT; item 1 sees the same table. With early_stopping=true both stop at step 2.
  const stepper = new ScriptedStepper(2, SCRIPT, 2);
  await beamSearch(stepper, parseGenerateOptions({ numBeams: 2, maxNewTokens: 5, earlyStopping: true }), SPECIAL);
  assert.deepEqual(stepper.calls, [4, 4]);
  const again = new ScriptedStepper(2, SCRIPT, 2);
  await beamSearch(again, parseGenerateOptions({ numBeams: 2, maxNewTokens: 5 }), SPECIAL);
  assert.deepEqual(again.calls, [4, 4, 4], 'both items stop after step 3');
});
