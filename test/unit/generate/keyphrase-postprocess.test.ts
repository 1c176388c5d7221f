import test from 'node:test';
import assert from 'node:assert/strict';
import {
  causalCompletionText, causalKeyphrases, DEFAULT_POSTPROCESS, idsBeforeEos, postprocessKeyphrases, type PostprocessOptions,
} from '../../../shared/generate/keyphrase-postprocess.js';

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

// Decoder-only outputs (causalCompletionText / causalKeyphrases), with the v4 prefixes.
const PREFIXES = ['generate keyphrases: ', ' keyphrases generated: '];
const PROMPT = 'generate keyphrases: 해람시 전통시장 상품권 기사 keyphrases generated:';

test('causal: the prompt is stripped; a URL after the target prefix is dropped; phrases split on ";"', () => {
  const whole = `${PROMPT} 해람시; https://news.example.com/a1; 상품권 ; 해람시`;
  assert.deepEqual(causalKeyphrases(whole, { prompt: PROMPT, prefixes: PREFIXES }), ['해람시', '상품권']);
  // Only the new tokens decoded (what CausalGenerator returns): nothing to strip.
  assert.deepEqual(causalKeyphrases(' 해람시; www.example.kr; 상품권', { prompt: PROMPT, prefixes: PREFIXES }), ['해람시', '상품권']);
});

test('causal: the output ends where a prefix starts again (the model beginning another example)', () => {
  const next = ' 해람시; 상품권 generate keyphrases: 다른 기사 keyphrases generated: 추석';
  assert.deepEqual(causalKeyphrases(next, { prefixes: PREFIXES }), ['해람시', '상품권']);
  assert.deepEqual(causalKeyphrases(' 추석; 명절 keyphrases generated: 송편', { prefixes: PREFIXES }), ['추석', '명절']);
  assert.equal(causalCompletionText(' a; b', { prefixes: PREFIXES }), ' a; b', 'no prefix: unchanged');
});

test('causal: cut at eos, as ids and as text', () => {
  assert.deepEqual(idsBeforeEos([5, 6, 1, 7], 1), [5, 6]);
  assert.deepEqual(idsBeforeEos([5, 6], 1), [5, 6]);
  assert.deepEqual(causalKeyphrases(' a; b<|endoftext|> c; d', { prefixes: PREFIXES, eosText: '<|endoftext|>' }), ['a', 'b']);
});

test('T5 post-processing is unchanged by the causal helpers (same defaults)', () => {
  assert.deepEqual(causalKeyphrases(RAW, { prefixes: [] }), postprocessKeyphrases(RAW));
});
