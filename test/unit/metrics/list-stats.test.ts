import test from 'node:test';
import assert from 'node:assert/strict';
import { histogram, listStats } from '../../../shared/metrics/list-stats.js';

test('histogram counts integers into bins and folds the overflow into the last one', () => {
  assert.deepEqual(histogram([0, 1, 1, 3, 9], 0, 3), [
    { label: '0', count: 1 },
    { label: '1', count: 2 },
    { label: '2', count: 0 },
    { label: '3+', count: 2 },
  ]);
});

test('listStats counts phrases, lengths and lists that repeat a phrase (by normal form)', () => {
  const s = listStats([['보드게임', 'AI', 'ai'], ['가나다'], []], 2);
  assert.equal(s.lists, 3);
  assert.equal(s.meanPhrases, 4 / 3);
  assert.equal(s.meanUniquePhrases, 1); // (2 + 1 + 0) / 3
  // Lengths in code points: 4, 2, 2, 3 -> 11 characters over 4 phrases and 3 lists.
  assert.equal(s.meanPhraseChars, 11 / 4);
  assert.equal(s.meanListChars, 11 / 3);
  assert.equal(s.shareWithRepeatedPhrase, 1 / 3);
  assert.equal(s.shareEmpty, 1 / 3);
  assert.equal(s.shareFewerThanK, 2 / 3); // 1 and 0 distinct phrases are fewer than 2
  assert.equal(s.phrasesPerList.find((b) => b.label === '3')!.count, 1);
  assert.equal(s.phraseChars.find((b) => b.label === '2')!.count, 2);
});
