import test from 'node:test';
import assert from 'node:assert/strict';
import { normalisePhrases, normaliseText } from '../../../shared/metrics/normalise.js';

test('normaliseText applies NFKC, collapses whitespace and lower-cases Latin letters only', () => {
  assert.equal(normaliseText('ＵＣＬ  득점왕'), 'ucl 득점왕'); // full-width Latin folds to ASCII
  assert.equal(normaliseText(' 레알\t\n마드리드 '), '레알 마드리드');
  assert.equal(normaliseText('Élan ΑΒΓ'), 'élan ΑΒΓ'); // Greek is not Latin: left as is
  assert.equal(normaliseText('①'), '1');
  // Decomposed jamo compose into the syllable under NFKC.
  assert.equal(normaliseText('\u1112\u1161\u11ab'), '한');
});

test('normalisePhrases drops empties and keeps the first of duplicates by normal form', () => {
  assert.deepEqual(normalisePhrases(['AI', '인공지능', 'ai', ' Ａｉ ', '인공 지능', '인공지능']), ['ai', '인공지능', '인공 지능']);
  assert.deepEqual(normalisePhrases([]), []);
});
