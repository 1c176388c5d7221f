import test from 'node:test';
import assert from 'node:assert/strict';
import { mean, percent4, roundLikePython } from '../../../shared/metrics/round.js';

test("roundLikePython breaks exact binary ties to even, like Python's round()", () => {
  // 0.03125 and 0.09375 are exact in binary, so their 5th decimal is a true tie.
  assert.equal(roundLikePython(0.03125, 4), 0.0312); // Python: round(0.03125, 4) == 0.0312
  assert.equal(roundLikePython(0.09375, 4), 0.0938); // Python: round(0.09375, 4) == 0.0938
  assert.equal(roundLikePython(-0.03125, 4), -0.0312);
  assert.equal(roundLikePython(2.5, 0), 2);
  assert.equal(roundLikePython(3.5, 0), 4);
});

test('roundLikePython rounds non-ties from the exact binary value', () => {
  // 2.675 is stored as 2.67499999999999982236431605997495353221893310546875.
  assert.equal(roundLikePython(2.675, 2), 2.67);
  assert.equal(roundLikePython(61.02734999, 4), 61.0273);
  assert.equal(roundLikePython(61.02735001, 4), 61.0274);
});

test('percent4 scales by 100 and rounds to 4 places; mean of nothing is 0', () => {
  assert.equal(percent4(0.610273456), 61.0273);
  assert.equal(percent4(1), 100);
  assert.equal(mean([]), 0);
  assert.equal(mean([0.5, 1, 0]), 0.5);
});
