import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { resolveRules } from '../../shared/data/data-rules.js';
import { causalTexts } from '../../shared/data/prepare.js';
import { withAddedTokens } from '../../shared/tokenizer/added-tokens.js';
import type { HfTokenizer } from '../../shared/tokenizer/hf-tokenizer.js';
import { loadTokenizer } from '../../shared/tokenizer/load-tokenizer.js';
import { sharedDataDir } from './shared-data.js';

// The team's later decoder-only runs: polyglot-ko with the two prefixes added as tokens
// (tokenizer.add_tokens + resize_token_embeddings). HF gives the new tokens len(tokenizer) onwards.

const base = loadTokenizer(join(sharedDataDir(), 'polyglot-ko-tokenizer.json')) as HfTokenizer;
const rules = resolveRules('v4');
const added = withAddedTokens(base, ['generate keyphrases:', 'keyphrases generated:']);

test('polyglot-ko + the two prefixes: ids 30006 and 30007, vocabulary 30008', () => {
  assert.equal(base.vocabSize, 30006);
  assert.equal(added.vocabSize, 30008);
  assert.deepEqual(added.encode('generate keyphrases:'), [30006]);
  assert.deepEqual(added.encode('keyphrases generated:'), [30007]);
  // As text the prefix is several BPE tokens.
  assert.ok(base.encode('generate keyphrases:').length > 1);
});

test('a whole sequence: the prefixes are one token each, the text between them is BPE as before, and it round-trips', () => {
  const article = ' 서울시는 3일 시내 전통시장 다섯 곳에서 상품권 환급 행사를 연다고 밝혔다. ';
  const target = ' 전통시장; 상품권 환급; 지역화폐';
  const text = `generate keyphrases:${article}keyphrases generated:${target}`;
  const ids = added.encode(text);
  assert.deepEqual(ids, [30006, ...base.encode(article), 30007, ...base.encode(target)]);
  assert.equal((added as unknown as HfTokenizer).decode([...ids, base.eosId], { cleanUpTokenizationSpaces: false }), `${text}<|endoftext|>`);
});

test('prefixes as text: cutting the sequence after "keyphrases generated:" gives the ids of the whole sequence (100 articles)', () => {
  const rows = readFileSync(join(sharedDataDir(), 'korean-news-2k-unlabelled.jsonl'), 'utf8').split('\n').filter((l) => l !== '').slice(0, 100);
  for (const line of rows) {
    const r = JSON.parse(line) as { title: string; body: string };
    const [prompt, completion] = causalTexts(rules, `generate keyphrases: ${r.title} ${r.body}`, '서울시; 전통시장; 상품권 환급');
    assert.deepEqual([...base.encode(prompt), ...base.encode(completion)], base.encode(prompt + completion));
  }
});
