import assert from 'node:assert/strict';
import { join } from 'node:path';
import test from 'node:test';
import { synthRow } from '../../shared/data/synth.js';
import { loadTokenizer } from '../../shared/tokenizer/load-tokenizer.js';
import { sharedDataDir } from './shared-data.js';

// synth's lengths in a byte-level BPE's tokens: the word-by-word count must equal the tokenizer's
// count of the whole input (the reason: the pre-tokenizer splits on spaces before any merge).
const tokenizer = loadTokenizer(join(sharedDataDir(), 'polyglot-ko-tokenizer.json'));

test('synthetic inputs measured in polyglot-ko tokens: counted = encoded, within 500-999, targets under 64', () => {
  let sum = 0;
  const n = 40;
  for (let i = 0; i < n; i++) {
    const { row, inputTokens } = synthRow(tokenizer, 5, i);
    const encoded = tokenizer.encode(`generate keyphrases: ${row.title} ${row.body}`).length + 1;
    assert.equal(encoded, inputTokens, `row ${i}`);
    assert.ok(encoded >= 500 && encoded <= 999);
    assert.ok(tokenizer.encode(row.keyphrases).length + 1 < 64, row.keyphrases);
    sum += encoded;
  }
  // Mean of 40 target lengths (sd ~85): within 60 of 725 is a > 4 sd margin.
  assert.ok(Math.abs(sum / n - 725) < 60, `mean ${sum / n}`);
});
