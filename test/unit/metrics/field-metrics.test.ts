import test from 'node:test';
import assert from 'node:assert/strict';
import { averagePRF, exactMatchAt, splitPresentAbsent } from '../../../shared/metrics/field-metrics.js';
import { normalisePhrases, normaliseText } from '../../../shared/metrics/normalise.js';

// Expected values are worked out by hand; 1e-12 allows only for float division rounding.
const close = (actual: number, expected: number): void => assert.ok(Math.abs(actual - expected) < 1e-12, `${actual} != ${expected}`);

const gold = ['a', 'b', 'c'];

test('@k takes the first k predictions and pads short lists with misses', () => {
  const prediction = ['a', 'x', 'b', 'y', 'c', 'z'];
  // @5: a, x, b, y, c -> 3 matches. P = 3/5, R = 3/3, F1 = 0.75.
  const at5 = exactMatchAt(gold, prediction, 5);
  close(at5.precision, 3 / 5);
  close(at5.recall, 1);
  close(at5.f1, 0.75);
  // Fewer than k: two predictions, both right. P = 2/10 (padded), R = 2/3, F1 = 2·0.2·(2/3)/(0.2+2/3) = 4/13.
  const short = exactMatchAt(gold, ['a', 'b'], 10);
  close(short.precision, 0.2);
  close(short.recall, 2 / 3);
  close(short.f1, 4 / 13);
});

test('@M uses every prediction and divides by their number', () => {
  // 2 of 2 right: P = 1, R = 2/3, F1 = 0.8.
  const m = exactMatchAt(gold, ['a', 'b'], 'M');
  close(m.precision, 1);
  close(m.f1, 0.8);
  // 3 of 6 right: P = 1/2, R = 1, F1 = 2/3.
  close(exactMatchAt(gold, ['a', 'x', 'b', 'y', 'c', 'z'], 'M').f1, 2 / 3);
});

test('@O cuts at the number of gold phrases, so precision equals recall', () => {
  // k = 3: a, x, b -> 2 matches. P = R = F1 = 2/3; the later "c" does not count.
  const o = exactMatchAt(gold, ['a', 'x', 'b', 'c'], 'O');
  close(o.precision, 2 / 3);
  close(o.recall, 2 / 3);
  close(o.f1, 2 / 3);
});

test('an empty prediction, or no gold, scores 0 everywhere', () => {
  for (const cutoff of [5, 10, 'M', 'O'] as const) {
    assert.deepEqual(exactMatchAt(gold, [], cutoff), { precision: 0, recall: 0, f1: 0 });
    assert.deepEqual(exactMatchAt([], ['a'], cutoff), { precision: 0, recall: 0, f1: 0 });
  }
});

test('matching is exact on normal forms: substrings do not match, duplicates count once', () => {
  const g = normalisePhrases(['보드게임콘', 'UCL']);
  const p = normalisePhrases(['보드게임', 'ucl', 'ＵＣＬ', 'Ucl']);
  assert.deepEqual(p, ['보드게임', 'ucl']);
  // M: 1 of 2 right. P = 1/2, R = 1/2.
  const m = exactMatchAt(g, p, 'M');
  close(m.precision, 0.5);
  close(m.recall, 0.5);
});

test('averagePRF reports the mean of F1s and the F1 of mean P and mean R', () => {
  // Document 1: P 1, R 1/2, F1 2/3. Document 2: P 0, R 0, F1 0.
  const avg = averagePRF([
    { precision: 1, recall: 0.5, f1: 2 / 3 },
    { precision: 0, recall: 0, f1: 0 },
  ]);
  close(avg.macroPrecision, 0.5);
  close(avg.macroRecall, 0.25);
  close(avg.f1Mean, 1 / 3);
  close(avg.f1OfMacroPR, (2 * 0.5 * 0.25) / 0.75);
  // A case where the two averages differ: P/R (1, 1) and (1, 0.25).
  const differ = averagePRF([
    { precision: 1, recall: 1, f1: 1 },
    { precision: 1, recall: 0.25, f1: 0.4 },
  ]);
  close(differ.f1Mean, 0.7);
  close(differ.f1OfMacroPR, (2 * 1 * 0.625) / 1.625);
});

test('present means the normal form occurs in the normalised source, absent otherwise', () => {
  const source = normaliseText('레알 마드리드의  벤제마가 UCL 득점왕에 올랐다.');
  const phrases = normalisePhrases(['벤제마', 'ucl 득점왕', '레알 마드리드', '발롱도르', '재계약 합의']);
  assert.deepEqual(splitPresentAbsent(phrases, source), {
    present: ['벤제마', 'ucl 득점왕', '레알 마드리드'],
    absent: ['발롱도르', '재계약 합의'],
  });
  assert.deepEqual(splitPresentAbsent([], source), { present: [], absent: [] });
});
