import assert from 'node:assert/strict';
import test from 'node:test';
import { hangulShare, isMissing, labelPhrases, normalizeWhitespace, splitLabelString, type PhraseCounts } from '../../../shared/data/text-rules.js';

test('isMissing: null, blank and "None" are missing; other text is not', () => {
  for (const v of [null, undefined, '', '   ', 'None', ' None\n']) assert.equal(isMissing(v), true, JSON.stringify(v));
  for (const v of ['none', 'Nonesuch', '0', '가']) assert.equal(isMissing(v), false, v);
});

test('normalizeWhitespace: newlines, tabs and runs become one space; ends trimmed', () => {
  assert.equal(normalizeWhitespace('  첫 문단.\n\n둘째\t\t문단.\r\n셋째   \u3000끝 '), '첫 문단. 둘째 문단. 셋째 끝');
});

test('hangulShare counts letters only: digits, punctuation and spaces do not count', () => {
  assert.equal(hangulShare('가나다'), 1);
  assert.equal(hangulShare('abc'), 0);
  assert.equal(hangulShare('2024년 GDP 3.1%'), 1 / 4); // 년 vs G, D, P
  assert.equal(hangulShare('12345 !!'), 0);
  assert.equal(hangulShare('ㄱㄴ ab'), 0.5); // compatibility Jamo are Hangul
  assert.equal(hangulShare('𝐀가'), 0.5); // an astral letter counts once
  assert.equal(hangulShare('日本語 가'), 0.25);
});

test('labelPhrases: split, trim, strip end punctuation, drop empties and repeats, cap', () => {
  const counts: PhraseCounts = { empty: 0, duplicate: 0, overCap: 0 };
  const got = labelPhrases(',전통시장 ; 전통시장;  상품권   환급. ; ‘지역화폐’ ; (주)해람상사 ; C++ ; ', ';', { clean: true, maxPhrases: 10 }, counts);
  assert.deepEqual(got, ['전통시장', '상품권 환급', '지역화폐', '(주)해람상사', 'C++']);
  assert.deepEqual(counts, { empty: 1, duplicate: 1, overCap: 0 });
});

test('labelPhrases: the separator is configurable; lists are taken as they are; the cap keeps the first N', () => {
  assert.deepEqual(labelPhrases('배꼽마을,가을단풍,옥천군\n', ',', { clean: true, maxPhrases: 10 }), ['배꼽마을', '가을단풍', '옥천군']);
  const counts: PhraseCounts = { empty: 0, duplicate: 0, overCap: 0 };
  const list = Array.from({ length: 12 }, (_, i) => `p${i}`);
  assert.deepEqual(labelPhrases(list, ';', { clean: true, maxPhrases: 10 }, counts), list.slice(0, 10));
  assert.equal(counts.overCap, 2);
  assert.deepEqual(labelPhrases(list, ';', { clean: true, maxPhrases: null }), list);
  // Cleaning off: pieces kept verbatim, empties included.
  assert.deepEqual(labelPhrases(' a ; ;a', ';', { clean: false, maxPhrases: null }), [' a ', ' ', 'a']);
});

test('splitLabelString reads JSON and Python list strings (pandas writes lists to CSV that way)', () => {
  assert.deepEqual(splitLabelString("['버스 노선', '개편']", ';'), ['버스 노선', '개편']);
  assert.deepEqual(splitLabelString('["a", "b\\"c"]', ';'), ['a', 'b"c']);
  assert.deepEqual(splitLabelString("['it\\'s', \"x\"]", ';'), ["it's", 'x']);
  assert.deepEqual(splitLabelString('[]', ';'), []);
  // Not a well-formed list: split as plain text.
  assert.deepEqual(splitLabelString('[속보]; 화재', ';'), ['[속보]', ' 화재']);
  assert.deepEqual(splitLabelString("['a' 'b']", ';'), ["['a' 'b']"]);
});
