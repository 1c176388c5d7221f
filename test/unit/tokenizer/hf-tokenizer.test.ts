import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { InputFileError } from '../../../shared/errors.js';
import { HfTokenizer, NO_UNK_ID } from '../../../shared/tokenizer/hf-tokenizer.js';
import { loadTokenizer } from '../../../shared/tokenizer/load-tokenizer.js';
import { fixture, scratchDir } from '../data/helpers.js';

// Two crafted tokenizer.json files: a T5-style Unigram + Metaspace one (the structure of pko-t5's)
// with tokenizer_config.json beside it, and a GPT-style byte-level BPE one saved with a name prefix
// (like the team's polyglot-ko files) whose eos and pad are <|endoftext|>.

test('T5-style folder: pad/eos/unk from tokenizer_config.json, encode without eos, decode', () => {
  const t = loadTokenizer(fixture('t5-style-tokenizer'));
  assert.equal(t.kind, 'hf');
  assert.deepEqual([t.padId, t.eosId, t.unkId], [0, 1, 2]);
  const text = 'generate keyphrases: 한국의 데이터';
  const ids = t.encode(text);
  assert.ok(!ids.includes(t.eosId), 'encode adds no special tokens');
  assert.equal(t.decode(ids), text);
  assert.equal(t.decode([...ids, t.eosId, t.padId], { skipSpecialTokens: true }), text);
  assert.equal(t.decode([...ids, t.eosId]), `${text}</s>`);
  // A character outside the vocabulary becomes unk.
  assert.ok(t.encode('한국 X').includes(t.unkId));
  assert.equal(t.decode([]), '');
  assert.throws(() => t.decode([t.vocabSize]), RangeError);
});

test('byte-level BPE with prefixed companions: eos = pad = <|endoftext|>, no unk, exact round trip', () => {
  const t = loadTokenizer(fixture('tiny-bpe-tokenizer.json'));
  assert.equal(t.eosId, 0);
  assert.equal(t.padId, 0);
  assert.equal(t.unkId, NO_UNK_ID);
  for (const s of ['한국 뉴스 키워드', ' 한국  é😀\n x', 'a , b .']) {
    assert.equal((t as HfTokenizer).decode(t.encode(s), { cleanUpTokenizationSpaces: false }), s);
  }
  // Merges apply: "한국" is one token, not six bytes.
  assert.equal(t.encode('한국').length, 1);
});

test('fingerprint depends on the file and on the special ids chosen', (t) => {
  const dir = scratchDir(t);
  const a = loadTokenizer(fixture('t5-style-tokenizer'));
  assert.equal(loadTokenizer(fixture('t5-style-tokenizer/tokenizer.json')).fingerprint, a.fingerprint);
  copyFileSync(fixture('t5-style-tokenizer/tokenizer.json'), join(dir, 'tokenizer.json'));
  // Same tokenizer.json, no config: ids come from the token strings, which here agree.
  const b = loadTokenizer(dir);
  assert.deepEqual([b.padId, b.eosId, b.unkId], [0, 1, 2]);
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '</s>', pad_token: '</s>', unk_token: '<unk>' }));
  const c = loadTokenizer(dir);
  assert.equal(c.padId, 1);
  assert.notEqual(c.fingerprint, a.fingerprint);
});

test('bad tokenizer files name the file and the field', (t) => {
  const dir = scratchDir(t);
  assert.throws(() => loadTokenizer(join(dir, 'nope.json')), (e: unknown) => e instanceof InputFileError && /no such tokenizer/u.test(e.message));
  assert.throws(() => loadTokenizer(dir), /holds no tokenizer\.json/u);
  writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
  assert.throws(() => loadTokenizer(dir), /tokenizer\.json: not valid JSON/u);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ added_tokens: [] }));
  assert.throws(() => loadTokenizer(dir), /field model/u);
  copyFileSync(fixture('t5-style-tokenizer/tokenizer.json'), join(dir, 'tokenizer.json'));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<eos-not-there>' }));
  assert.throws(() => loadTokenizer(dir), /tokenizer_config\.json: field eos_token: token "<eos-not-there>" is not in/u);
});
