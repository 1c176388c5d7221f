import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { openDataCache } from '../../shared/data/data-cache.js';
import { resolveRules } from '../../shared/data/data-rules.js';
import { prepareData, type PrepareReport } from '../../shared/data/prepare.js';
import { loadTokenizer } from '../../shared/tokenizer/load-tokenizer.js';
import { sharedDataDir } from './shared-data.js';

// The team's seed sets through `prepare` with the polyglot-ko tokenizer. V1/V2 rows are
// `title_content` with "," labels. The counts per rule are this data's facts (the files are fixed);
// a change in them means a rule changed behaviour.

const DATA = sharedDataDir();
const spec = join(DATA, 'polyglot-ko-tokenizer.json');
const tokenizer = loadTokenizer(spec);

async function prepare(t: { after(fn: () => void): void }, file: string, overrides: Record<string, unknown>): Promise<{ report: PrepareReport; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'kp-data-real-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'cache');
  const report = await prepareData({ inputs: [join(DATA, file)], tokenizer, tokenizerSpec: spec, rules: resolveRules('v4', [{ keyphrase_separator: ',', ...overrides }]), outDir: out });
  return { report, out };
}

test('V2 (seed-v2-gpt4.jsonl) under the V4 rules: no article reaches 500 tokens, so nothing is kept', async (t) => {
  await assert.rejects(prepare(t, 'seed-v2-gpt4.jsonl', {}), (e: unknown) => {
    const m = (e as Error).message;
    return /seed-v2-gpt4\.jsonl: data prepare kept no training rows \(read 1585 rows, 0 bad lines skipped;/u.test(m) && m.includes('"not_korean":44') && m.includes('"input_too_short":1541');
  });
});

test('V2 without the 500-token floor: counts per rule, cleaned labels, a cache that opens', async (t) => {
  const { report, out } = await prepare(t, 'seed-v2-gpt4.jsonl', { min_input_tokens: null });
  assert.equal(report.rows_read, 1585);
  assert.deepEqual(report.dropped, {
    missing_text: 0,
    missing_keyphrases: 0,
    duplicate_title: 0,
    not_korean: 44, // English wire stories (EPA captions and the like)
    empty_keyphrases: 0,
    input_too_short: 0,
    input_too_long: 0,
    target_too_long: 0,
    sequence_too_long: 0,
  });
  // GPT-4's raw labels: stray separators (empty pieces), a few repeats, and often more than 10 phrases.
  assert.deepEqual(report.keyphrase_cleaning, { empty_removed: 266, duplicates_removed: 11, over_cap_removed: 2181 });
  assert.deepEqual(report.kept, { total: 1541, train: 1232, eval: 309 });
  const train = report.lengths.train!;
  assert.ok(train.input.max < 500 && train.label.max < 64);
  const cache = openDataCache(out, { tokenizerFingerprint: tokenizer.fingerprint, verifyChecksums: true });
  assert.equal(cache.manifest.token_dtype, 'uint16');
  for (let i = 0; i < cache.train.size; i += 97) {
    const input = tokenizer.decode(cache.train.inputIds(i), { skipSpecialTokens: true });
    const target = tokenizer.decode(cache.train.labelIds(i), { skipSpecialTokens: true });
    assert.ok(input.startsWith('generate keyphrases: ') && !input.includes('\n'));
    const phrases = target.split('; ');
    assert.ok(phrases.length >= 1 && phrases.length <= 10 && phrases.every((p) => p !== '' && p === p.trim()), target);
    assert.equal(cache.train.inputIds(i).at(-1), tokenizer.eosId);
  }
});

test('V1 (seed-v1-reviewed.jsonl) under the V4 rules: 5 of 10 reach 500 tokens', async (t) => {
  const { report } = await prepare(t, 'seed-v1-reviewed.jsonl', {});
  assert.equal(report.rows_read, 10);
  assert.equal(report.dropped.input_too_short, 5);
  assert.deepEqual(report.kept, { total: 5, train: 4, eval: 1 });
  assert.ok(report.lengths.train!.input.min >= 500 && report.lengths.train!.input.max < 1000);
});
