import test from 'node:test';
import assert from 'node:assert/strict';
import { teamF1AtK, teamJaccardAtK } from '../../../shared/metrics/team-metrics.js';

// Expected values are worked out by hand from the definitions in ../shared/data/README.md;
// 1e-12 allows only for the last-bit rounding of a few float divisions.
const close = (actual: number, expected: number): void => assert.ok(Math.abs(actual - expected) < 1e-12, `${actual} != ${expected}`);

test('an empty prediction scores 0 on both metrics', () => {
  assert.equal(teamF1AtK(['a', 'b'], [], 10), 0);
  assert.equal(teamJaccardAtK(['a', 'b'], [], 10), 0);
});

test('substring matches count both ways', () => {
  // "보드게임" is inside gold "보드게임콘"; gold "국회" is inside "국회 법사위"; "정의당" matches nothing.
  // TP 2, FP 1; no gold unmatched: FN 0. P = 2/3, R = 2/2, F1 = 0.8.
  close(teamF1AtK(['보드게임콘', '국회'], ['보드게임', '국회 법사위', '정의당'], 10), 0.8);
  // Jaccard is exact-string only: no common string.
  assert.equal(teamJaccardAtK(['보드게임콘', '국회'], ['보드게임', '국회 법사위', '정의당'], 10), 0);
});

test('duplicates count as lists, and the recall is TP/(TP+FN) as the team wrote it', () => {
  // Prediction ["a", "a", "x"], gold ["a", "b"]: TP 2 (both "a"), FP 1, FN 1 ("b").
  // P = 2/3, R = 2/(2+1) = 2/3, F1 = 2/3.
  close(teamF1AtK(['a', 'b'], ['a', 'a', 'x'], 10), 2 / 3);
  // Jaccard: set intersection {"a"} = 1; denominator 2 + 3 - 1 = 4.
  close(teamJaccardAtK(['a', 'b'], ['a', 'a', 'x'], 10), 1 / 4);
});

test('only the prediction is cut to k; fewer than k predictions are used as they are', () => {
  // k = 2 keeps ["a", "x"]: TP 1, FP 1; gold "b", "c" unmatched: FN 2. P = 1/2, R = 1/3, F1 = 0.4.
  close(teamF1AtK(['a', 'b', 'c'], ['a', 'x', 'b', 'c'], 2), 0.4);
  // Jaccard@2: common {"a"}, denominator 3 + 2 - 1 = 4 (gold not cut).
  close(teamJaccardAtK(['a', 'b', 'c'], ['a', 'x', 'b', 'c'], 2), 1 / 4);
  // Two predictions with k = 10: both exact hits of a three-phrase gold. P = 1, R = 2/3, F1 = 0.8.
  close(teamF1AtK(['a', 'b', 'c'], ['a', 'b'], 10), 0.8);
  close(teamJaccardAtK(['a', 'b', 'c'], ['a', 'b'], 10), 2 / 3);
});

test('absent phrases (matching no gold) are false positives', () => {
  assert.equal(teamF1AtK(['가', '나'], ['다', '라'], 10), 0);
  assert.equal(teamJaccardAtK(['가', '나'], ['다', '라'], 10), 0);
});

test('a perfect prediction scores 1', () => {
  assert.equal(teamF1AtK(['a', 'b'], ['a', 'b'], 10), 1);
  assert.equal(teamJaccardAtK(['a', 'b'], ['b', 'a'], 10), 1);
});
