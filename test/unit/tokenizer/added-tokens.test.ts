import assert from 'node:assert/strict';
import test from 'node:test';
import { AddedTokensTokenizer, withAddedTokens } from '../../../shared/tokenizer/added-tokens.js';
import { ByteTokenizer } from '../../../shared/tokenizer/byte-tokenizer.js';
import type { HfTokenizer } from '../../../shared/tokenizer/hf-tokenizer.js';
import { loadTokenizer } from '../../../shared/tokenizer/load-tokenizer.js';
import { fixture } from '../data/helpers.js';

// HF `tokenizer.add_tokens([...])`: new ids after the vocabulary, matched as whole strings before
// the base tokenizer runs on the pieces between them.

const PREFIXES = ['generate keyphrases:', 'keyphrases generated:'];

test('byte tokenizer: new ids 259 and 260, the text between them encoded as bytes, exact round trip', () => {
  const base = new ByteTokenizer();
  const t = new AddedTokensTokenizer(base, PREFIXES);
  assert.equal(t.vocabSize, 261);
  assert.deepEqual(t.added, [{ content: 'generate keyphrases:', id: 259 }, { content: 'keyphrases generated:', id: 260 }]);
  assert.deepEqual([t.padId, t.eosId, t.unkId, t.kind], [0, 1, 2, 'byte']);
  const text = 'generate keyphrases: 한국 뉴스 keyphrases generated: 뉴스; 한국';
  const ids = t.encode(text);
  assert.deepEqual(ids, [259, ...base.encode(' 한국 뉴스 '), 260, ...base.encode(' 뉴스; 한국')]);
  assert.equal(t.decode(ids), text);
  // Added tokens are not special (add_tokens' default): skipSpecialTokens keeps them, drops eos.
  assert.equal(t.decode([...ids, t.eosId], { skipSpecialTokens: true }), text);
  assert.equal(t.decode([260, 1]), 'keyphrases generated:</s>');
  // Leftmost match first; a token that starts another does not cut it (longest first).
  const nested = new AddedTokensTokenizer(base, ['ab', 'abc']);
  assert.deepEqual(nested.encode('xabcab'), [...base.encode('x'), 260, 259]);
  assert.deepEqual(t.encode(''), []);
  assert.deepEqual(t.encode('no prefix here'), base.encode('no prefix here'));
});

test('HF byte-level BPE: pieces are BPE-encoded as HF does around added tokens; fingerprint names the added tokens', () => {
  const base = loadTokenizer(fixture('tiny-bpe-tokenizer.json')) as HfTokenizer;
  const t = withAddedTokens(base, PREFIXES);
  assert.equal(t.vocabSize, base.vocabSize + 2);
  const ids = t.encode('generate keyphrases: 한국 뉴스 keyphrases generated: 한국');
  assert.equal(ids[0], base.vocabSize);
  assert.deepEqual(ids.slice(1), [...base.encode(' 한국 뉴스 '), base.vocabSize + 1, ...base.encode(' 한국')]);
  assert.equal((t as AddedTokensTokenizer).decode(ids, { cleanUpTokenizationSpaces: false } as object), 'generate keyphrases: 한국 뉴스 keyphrases generated: 한국');
  assert.notEqual(t.fingerprint, base.fingerprint);
  assert.equal(withAddedTokens(base, PREFIXES).fingerprint, t.fingerprint);
  assert.notEqual(withAddedTokens(base, ['other:']).fingerprint, t.fingerprint);
  assert.equal(withAddedTokens(base, []), base);
});

test('bad added tokens are refused: empty, repeated, already one token', () => {
  const base = new ByteTokenizer();
  assert.throws(() => new AddedTokensTokenizer(base, ['']), /must not be empty/u);
  assert.throws(() => new AddedTokensTokenizer(base, ['a:', 'a:']), /"a:" is given twice/u);
  assert.throws(() => new AddedTokensTokenizer(base, ['x']), /"x" is already one token of the tokenizer/u);
});
