import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { HfTokenizer, NO_UNK_ID } from '../../shared/tokenizer/hf-tokenizer.js';
import { loadTokenizer } from '../../shared/tokenizer/load-tokenizer.js';
import { sharedDataDir } from './shared-data.js';

// The team's polyglot-ko tokenizer (BBPE, 30k) on real Korean news from ../shared/data.

const DATA = sharedDataDir();
const tokenizer = loadTokenizer(join(DATA, 'polyglot-ko-tokenizer.json')) as HfTokenizer;
const ARTICLES = 300;

function articles(): string[] {
  return readFileSync(join(DATA, 'korean-news-2k-unlabelled.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .slice(0, ARTICLES)
    .map((l) => {
      const r = JSON.parse(l) as { title: string; body: string };
      return `${r.title} ${r.body}`;
    });
}

test('special ids come from the prefixed companion files: eos = pad = <|endoftext|>, no unk', () => {
  assert.equal(tokenizer.kind, 'hf');
  assert.equal(tokenizer.eosId, 2);
  assert.equal(tokenizer.padId, 2);
  assert.equal(tokenizer.decode([tokenizer.eosId]), '<|endoftext|>');
  assert.equal(tokenizer.unkId, NO_UNK_ID);
  // 30,000 BPE ids plus the added tokens up to id 30,005.
  assert.equal(tokenizer.vocabSize, 30006);
});

test(`news text round-trips exactly (${ARTICLES} articles) with plausible token counts`, () => {
  let chars = 0;
  let tokens = 0;
  for (const text of articles()) {
    const ids = tokenizer.encode(text);
    assert.ok(!ids.includes(tokenizer.eosId), 'no special tokens added');
    assert.equal(tokenizer.decode(ids, { cleanUpTokenizationSpaces: false }), text);
    const n = [...text].length;
    // A Korean BBPE token covers 1.6-2.2 characters on this news (measured 1.93 on average).
    assert.ok(n / ids.length > 1.3 && n / ids.length < 2.6, `chars per token ${n / ids.length}`);
    chars += n;
    tokens += ids.length;
  }
  const ratio = chars / tokens;
  assert.ok(ratio > 1.7 && ratio < 2.2, `chars per token over all articles ${ratio}`);
});

test('decode skips eos/pad on request; by default HF cleans " ." as transformers does', () => {
  const ids = tokenizer.encode('서울시는 3일 밝혔다 .');
  assert.equal(tokenizer.decode([...ids, tokenizer.eosId, tokenizer.padId], { skipSpecialTokens: true, cleanUpTokenizationSpaces: false }), '서울시는 3일 밝혔다 .');
  assert.equal(tokenizer.decode(ids), '서울시는 3일 밝혔다.');
});
