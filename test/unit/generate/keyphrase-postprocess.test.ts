import test from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_POSTPROCESS, postprocessKeyphrases, type PostprocessOptions } from '../../../shared/generate/keyphrase-postprocess.js';

const RAW = ' 해람시 ; 전통시장;; https://news.example.com/a1 ;해람시; 상품권 ;www.example.kr;  ; 추석 ; 전통시장 ';
const run = (o: Partial<PostprocessOptions>): string[] => postprocessKeyphrases(RAW, { ...DEFAULT_POSTPROCESS, ...o });

test('all steps on: split, trim, drop empties and URLs, de-duplicate (first kept)', () => {
  assert.deepEqual(run({}), ['해람시', '전통시장', '상품권', '추석']);
});

test('each step can be switched off on its own', () => {
  assert.deepEqual(run({ topK: 2 }), ['해람시', '전통시장'], 'cap at K keeps the first K after de-duplication');
  assert.deepEqual(run({ dedupe: false }), ['해람시', '전통시장', '해람시', '상품권', '추석', '전통시장']);
  assert.deepEqual(run({ dropUrls: false }), ['해람시', '전통시장', 'https://news.example.com/a1', '상품권', 'www.example.kr', '추석']);
  assert.deepEqual(run({ dropEmpty: false }), ['해람시', '전통시장', '', '상품권', '추석']);
  // Without trimming, " 해람시 " and "해람시" are different phrases; whitespace-only ones still count as empty.
  assert.deepEqual(run({ trim: false }), [' 해람시 ', ' 전통시장', '해람시', ' 상품권 ', ' 추석 ', ' 전통시장 ']);
  assert.deepEqual(run({ split: false, dropUrls: false }), [RAW.trim()]);
  assert.deepEqual(run({ split: false }), [], 'the whole text holds a URL');
  assert.deepEqual(postprocessKeyphrases('a, b, a', { ...DEFAULT_POSTPROCESS, separator: ',' }), ['a', 'b']);
});

test('all off returns the text split and nothing more; empty output gives no phrases', () => {
  const off: PostprocessOptions = { split: true, separator: ';', trim: false, dropEmpty: false, dropUrls: false, dedupe: false, topK: null };
  assert.deepEqual(postprocessKeyphrases(RAW, off), RAW.split(';'));
  assert.deepEqual(postprocessKeyphrases('', DEFAULT_POSTPROCESS), []);
  assert.deepEqual(postprocessKeyphrases(' ; ;', DEFAULT_POSTPROCESS), []);
  assert.deepEqual(postprocessKeyphrases('a;b;c', { ...DEFAULT_POSTPROCESS, topK: 5 }), ['a', 'b', 'c'], 'fewer than K');
});
