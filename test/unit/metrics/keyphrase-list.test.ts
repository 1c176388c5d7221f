import test from 'node:test';
import assert from 'node:assert/strict';
import { cleanPhrases, pythonStrip, splitPhrases } from '../../../shared/metrics/keyphrase-list.js';

test('splitPhrases splits on ";", strips, drops empty pieces, keeps order and duplicates', () => {
  assert.deepEqual(splitPhrases(' 보드게임콘;  2023 보드게임콘 ;;  ; 보드게임콘; '), ['보드게임콘', '2023 보드게임콘', '보드게임콘']);
  assert.deepEqual(splitPhrases(''), []);
  assert.deepEqual(splitPhrases(' ; ;'), []);
});

test("pythonStrip strips Python's whitespace set, not JavaScript's", () => {
  // U+001C..U+001F and U+0085 are whitespace to Python's str.strip() but not to String.trim().
  assert.equal(pythonStrip('\u001c\u0085 a b \u3000\u00a0'), 'a b');
  // U+FEFF is stripped by trim() but not by Python's strip().
  assert.equal(pythonStrip('\ufeffa'), '\ufeffa');
});

test('cleanPhrases strips and drops the empty entries of an array', () => {
  assert.deepEqual(cleanPhrases([' a ', '', '  ', 'b']), ['a', 'b']);
});
