import assert from 'node:assert/strict';
import test from 'node:test';
import { ByteTokenizer } from '../../../shared/tokenizer/byte-tokenizer.js';
import { loadTokenizer } from '../../../shared/tokenizer/load-tokenizer.js';

const t = new ByteTokenizer();

test('ByT5 layout: pad 0, eos 1, unk 2, byte b -> b + 3, 259 ids', () => {
  assert.equal(t.vocabSize, 259);
  assert.deepEqual([t.padId, t.eosId, t.unkId], [0, 1, 2]);
  assert.deepEqual(t.encode('A'), [0x41 + 3]);
  // 한 = U+D55C = ED 95 9C in UTF-8
  assert.deepEqual(t.encode('한'), [0xed + 3, 0x95 + 3, 0x9c + 3]);
  assert.deepEqual(t.encode(''), []);
});

test('any text round-trips: Korean, Latin, emoji, controls, the replacement char', () => {
  for (const s of ['한국 뉴스 키워드 생성', 'generate keyphrases: 가; 나', '😀 e\u0301 \u0000\n\t', '\ufffd', 'ㄱㄴㄷ ᄀ']) {
    const ids = t.encode(s);
    assert.ok(ids.every((id) => id >= 3 && id < 259));
    assert.equal(t.decode(ids), s);
  }
});

test('decode writes special ids as ByT5 does, or skips them', () => {
  const ids = [...t.encode('가'), 1, 0, 0];
  assert.equal(t.decode(ids), '가</s><pad><pad>');
  assert.equal(t.decode(ids, { skipSpecialTokens: true }), '가');
  assert.equal(t.decode([2, ...t.encode('a')]), '<unk>a');
});

test('decode of a broken byte run gives U+FFFD; an id outside the vocabulary throws', () => {
  assert.equal(t.decode([0xed + 3, 0x95 + 3]), '\ufffd');
  assert.throws(() => t.decode([259]), /outside 0\.\.258/u);
  assert.throws(() => t.decode([-1]), RangeError);
});

test('fingerprint is a stable sha256 and loadTokenizer("builtin") gives the same tokenizer', () => {
  assert.match(t.fingerprint, /^[0-9a-f]{64}$/u);
  const again = loadTokenizer('builtin');
  assert.equal(again.kind, 'byte');
  assert.equal(again.fingerprint, t.fingerprint);
});
