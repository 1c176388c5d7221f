import test from 'node:test';
import assert from 'node:assert/strict';
import { lcsLength, rougeL, rougeN, rougeScores } from '../../../shared/metrics/rouge.js';
import { tokenizeKorean } from '../../../shared/metrics/rouge-tokenizer.js';

// Expected values are worked out by hand; 1e-12 allows only for float division rounding.
const close = (actual: number, expected: number): void => assert.ok(Math.abs(actual - expected) < 1e-12, `${actual} != ${expected}`);

test('the tokenizer keeps Hangul, splits at script changes and drops punctuation', () => {
  assert.deepEqual(tokenizeKorean('2023 보드게임콘; 국내 최대 보드게임 축제'), ['2023', '보드게임콘', '국내', '최대', '보드게임', '축제']);
  assert.deepEqual(tokenizeKorean('2023년 UCL득점왕, 유럽축구연맹(UFEA)'), ['2023', '년', 'ucl', '득점왕', '유럽축구연맹', 'ufea']);
  assert.deepEqual(tokenizeKorean('與野 합의'), ['與野', '합의']);
  assert.deepEqual(tokenizeKorean('  ;; ... '), []);
});

test('keepSeparators also emits ";" tokens', () => {
  assert.deepEqual(tokenizeKorean('가; 나;', { keepSeparators: true }), ['가', ';', '나', ';']);
});

test('ROUGE-N is the F-measure of clipped n-gram overlap', () => {
  const ref = ['a', 'b', 'a', 'c'];
  const cand = ['a', 'a', 'a', 'b'];
  // Unigrams: ref a2 b1 c1, cand a3 b1 -> overlap min(2,3)+1 = 3. P = 3/4, R = 3/4.
  close(rougeN(ref, cand, 1), 0.75);
  // Bigrams: ref ab ba ac, cand aa aa ab -> overlap 1 (ab). P = 1/3, R = 1/3.
  close(rougeN(ref, cand, 2), 1 / 3);
  // Fewer tokens than n, or an empty side: 0.
  assert.equal(rougeN(['a'], ['a'], 2), 0);
  assert.equal(rougeN([], ['a'], 1), 0);
});

test('ROUGE-L is the F-measure of the longest common subsequence', () => {
  assert.equal(lcsLength(['a', 'b', 'c', 'd'], ['b', 'x', 'd', 'a']), 2);
  assert.equal(lcsLength([], ['a']), 0);
  // LCS 2; P = 2/4, R = 2/4.
  close(rougeL(['a', 'b', 'c', 'd'], ['b', 'x', 'd', 'a']), 0.5);
  // LCS of [a b c] and [c b a c] is 2 ("a c" or "b c"): P = 2/4, R = 2/3, F = 4/7.
  close(rougeL(['a', 'b', 'c'], ['c', 'b', 'a', 'c']), 4 / 7);
});

test('Korean text is scored, not treated as empty', () => {
  const s = rougeScores(tokenizeKorean('벤제마; 레알 마드리드'), tokenizeKorean('벤제마; 레알'));
  // ref [벤제마 레알 마드리드], cand [벤제마 레알]: R1 P 1, R 2/3 -> 0.8; R2 overlap 1 of 2 and 1 -> 2/3; LCS 2 -> 0.8.
  close(s.rouge1, 0.8);
  close(s.rouge2, 2 / 3);
  close(s.rougeL, 0.8);
});
