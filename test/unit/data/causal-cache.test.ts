import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { assembleCausalBatch, assembleModelBatch } from '../../../shared/data/assemble-batch.js';
import { WorkerPoolEncoder } from '../../../shared/data/batch-encoder.js';
import { cacheLayout, cacheVocabSize } from '../../../shared/data/cache-format.js';
import { checkCacheLayout, loadCacheTokenizer, openDataCache, sampleLengths, type DataSplit } from '../../../shared/data/data-cache.js';
import { encodingTokenizer, prefixAddedTokens, prepareData, type PrepareOptions, type PrepareReport } from '../../../shared/data/prepare.js';
import { InputFileError } from '../../../shared/errors.js';
import { IGNORE_INDEX } from '../../../shared/models/batch.js';
import { ByteTokenizer } from '../../../shared/tokenizer/byte-tokenizer.js';
import { loadTokenizer } from '../../../shared/tokenizer/load-tokenizer.js';
import { fixture, openRules, scratchDir } from './helpers.js';

// Causal caches (decoder-only models): one sequence `generate keyphrases: <article> keyphrases
// generated: <k1; k2>` + eos, stored as prompt and completion.

const bytes = new ByteTokenizer();
const ARTICLE = 'generate keyphrases: 줄바꿈이 있는 제목 첫 문단이다. 둘째 문단이다. 셋째 문단이다.';

function prepare(out: string, o: Partial<PrepareOptions> & { rulesOverrides?: Record<string, unknown> } = {}): Promise<PrepareReport> {
  const { rulesOverrides, ...rest } = o;
  return prepareData({ inputs: [fixture('rules-rows.jsonl')], tokenizer: bytes, tokenizerSpec: 'builtin', rules: openRules(rulesOverrides), outDir: out, layout: 'causal', ...rest });
}

const whole = (s: DataSplit, i: number): number[] => [...s.inputIds(i), ...s.labelIds(i)];

test('prefixes as text: prompt = prefix + article + target prefix (no eos), completion = keyphrases + eos', async (t) => {
  const out = join(scratchDir(t), 'cache');
  const r = await prepare(out);
  assert.equal(r.layout, 'causal');
  const cache = openDataCache(out, { tokenizerFingerprint: bytes.fingerprint });
  const m = cache.manifest;
  assert.deepEqual([m.format_version, m.layout, cacheLayout(m)], [2, 'causal', 'causal']);
  assert.deepEqual(m.causal, { prefix_tokens: 'text', added_tokens: [], vocab_size: 259 });
  assert.equal(cacheVocabSize(m), 259);
  const tr = cache.train;
  assert.deepEqual([...tr.inputIds(1)], bytes.encode(`${ARTICLE} keyphrases generated:`));
  assert.deepEqual([...tr.labelIds(1)], [...bytes.encode(' 문단; 줄바꿈'), bytes.eosId]);
  // The team's whole sequence.
  assert.equal(bytes.decode(whole(tr, 1)), `${ARTICLE} keyphrases generated: 문단; 줄바꿈</s>`);
  assert.deepEqual([...sampleLengths(tr, 'causal')], Array.from({ length: tr.size }, (_, i) => tr.inputLength(i) + tr.labelLength(i)));
  assert.deepEqual([...sampleLengths(tr, 'seq2seq')], Array.from({ length: tr.size }, (_, i) => tr.inputLength(i)));
  // Another target prefix.
  await prepare(join(out, '..', 'other'), { rulesOverrides: { target_prefix: '\n키워드: ' } });
  const other = openDataCache(join(out, '..', 'other')).train;
  assert.equal(bytes.decode(whole(other, 1)), `${ARTICLE}\n키워드: 문단; 줄바꿈</s>`);
});

test('prefixes as added tokens: ids 259 and 260 after the byte vocabulary, recorded in the manifest', async (t) => {
  const out = join(scratchDir(t), 'cache');
  await prepare(out, { prefixTokens: 'added' });
  const cache = openDataCache(out);
  const m = cache.manifest;
  assert.deepEqual(m.causal, {
    prefix_tokens: 'added',
    added_tokens: [{ content: 'generate keyphrases:', id: 259 }, { content: 'keyphrases generated:', id: 260 }],
    vocab_size: 261,
  });
  assert.equal(cacheVocabSize(m), 261);
  // The manifest's tokenizer is the base one (what a worker loads); the cache's tokenizer adds the two.
  assert.deepEqual([m.tokenizer.vocab_size, m.tokenizer.fingerprint], [259, bytes.fingerprint]);
  const prompt = [...cache.train.inputIds(1)];
  assert.deepEqual(prompt, [259, ...bytes.encode(' 줄바꿈이 있는 제목 첫 문단이다. 둘째 문단이다. 셋째 문단이다. '), 260]);
  const tok = loadCacheTokenizer(m);
  assert.equal(tok.vocabSize, 261);
  assert.equal(tok.decode(whole(cache.train, 1)), `${ARTICLE} keyphrases generated: 문단; 줄바꿈</s>`);
  assert.deepEqual(prefixAddedTokens(openRules(), 'added'), ['generate keyphrases:', 'keyphrases generated:']);
  assert.deepEqual(prefixAddedTokens(openRules(), 'text'), []);
});

test('length limits count the prompt, the completion and the whole sequence; a seq2seq cache refuses causal options', async (t) => {
  const dir = scratchDir(t);
  await prepare(join(dir, 'open'));
  const all = openDataCache(join(dir, 'open')).train;
  const seq = Array.from({ length: all.size }, (_, i) => all.inputLength(i) + all.labelLength(i));
  const limit = Math.max(...seq);
  const r = await prepare(join(dir, 'cut'), { rulesOverrides: { max_sequence_tokens: limit } });
  assert.equal(r.dropped.sequence_too_long, seq.filter((n) => n >= limit).length);
  assert.ok(r.dropped.sequence_too_long >= 1);
  const kept = openDataCache(join(dir, 'cut')).train;
  for (let i = 0; i < kept.size; i++) assert.ok(kept.inputLength(i) + kept.labelLength(i) < limit);
  // max_input_tokens counts the prompt (no eos in it).
  const prompts = Array.from({ length: all.size }, (_, i) => all.inputLength(i));
  const longest = Math.max(...prompts);
  const r2 = await prepare(join(dir, 'in'), { rulesOverrides: { max_input_tokens: longest } });
  assert.equal(r2.dropped.input_too_long, prompts.filter((n) => n >= longest).length);
  await assert.rejects(prepare(join(dir, 's2s'), { layout: 'seq2seq', rulesOverrides: { max_sequence_tokens: 100 } }), /max_sequence_tokens limits a causal sequence/u);
  await assert.rejects(prepare(join(dir, 's2s'), { layout: 'seq2seq', prefixTokens: 'added' }), /prefix tokens "added" is for the causal layout/u);
});

test('manifests: version 1 (no layout) still reads as seq2seq; a version 2 manifest must name its layout', async (t) => {
  const dir = scratchDir(t);
  const out = join(dir, 's2s');
  await prepare(out, { layout: 'seq2seq' });
  const file = join(out, 'manifest.json');
  const m = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  assert.deepEqual([m.format_version, m.layout, m.causal], [2, 'seq2seq', undefined]);
  const { layout: _layout, ...v1 } = m;
  writeFileSync(file, JSON.stringify({ ...v1, format_version: 1 }));
  const old = openDataCache(out, { modelType: 't5' });
  assert.equal(cacheLayout(old.manifest), 'seq2seq');
  assert.equal(old.train.size, 5);
  writeFileSync(file, JSON.stringify({ ...v1, format_version: 2 }));
  assert.throws(() => openDataCache(out), /layout: is required from format_version 2/u);
  writeFileSync(file, JSON.stringify({ ...m, layout: 'causal' }));
  assert.throws(() => openDataCache(out), /causal: is given exactly when layout is "causal"/u);
  writeFileSync(file, JSON.stringify({ ...m, format_version: 1 }));
  assert.throws(() => openDataCache(out), /version 1 caches have no layout/u);
});

test('a T5 run given a causal cache, or GPT-NeoX a seq2seq one, is refused naming the layouts and the fix', async (t) => {
  const dir = scratchDir(t);
  await prepare(join(dir, 'causal'));
  await prepare(join(dir, 's2s'), { layout: 'seq2seq' });
  assert.throws(
    () => openDataCache(join(dir, 'causal'), { modelType: 't5' }),
    (e: unknown) =>
      e instanceof InputFileError &&
      e.message.includes(`${join(dir, 'causal', 'manifest.json')}: layout: the data cache holds causal`) &&
      e.message.includes('the model is t5') &&
      e.message.includes('--layout seq2seq'),
  );
  assert.throws(() => openDataCache(join(dir, 's2s'), { modelType: 'gpt_neox' }), /holds seq2seq .* the model is gpt_neox.*--layout causal/u);
  openDataCache(join(dir, 'causal'), { modelType: 'gpt_neox' });
  const m = openDataCache(join(dir, 's2s')).manifest;
  checkCacheLayout(join(dir, 's2s'), m, 't5');
});

// Two prompts and completions written by hand.
const PROMPTS = [Uint16Array.of(10, 11, 12), Uint16Array.of(20)];
const COMPLETIONS = [Uint16Array.of(5, 1), Uint16Array.of(6, 7, 1)];
const split: DataSplit = {
  name: 'train',
  size: 2,
  inputIds: (i) => PROMPTS[i]!,
  labelIds: (i) => COMPLETIONS[i]!,
  inputLength: (i) => PROMPTS[i]!.length,
  labelLength: (i) => COMPLETIONS[i]!.length,
  source: (i) => ({ id: String(i), file: 'f', line: i + 1 }),
};

test('causal batches: prompt + completion, right padding, labels = ids (-100 on pads, and on the prompt with completion_only_loss)', () => {
  const X = IGNORE_INDEX;
  const b = assembleCausalBatch(split, [1, 0], 2);
  assert.deepEqual([b.kind, b.batchSize, b.seqLen], ['causal', 2, 5]);
  assert.deepEqual([...b.inputIds], [20, 6, 7, 1, 2, 10, 11, 12, 5, 1]);
  assert.deepEqual([...b.attentionMask], [1, 1, 1, 1, 0, 1, 1, 1, 1, 1]);
  assert.deepEqual([...b.labels], [20, 6, 7, 1, X, 10, 11, 12, 5, 1]);
  const c = assembleCausalBatch(split, [1, 0], 2, { completionOnlyLoss: true, padToMultipleOf: 4 });
  assert.equal(c.seqLen, 8);
  assert.deepEqual([...c.labels], [X, 6, 7, 1, X, X, X, X, X, X, X, 5, 1, X, X, X]);
  assert.throws(() => assembleCausalBatch(split, [], 0), /no samples/u);
});

test('assembleModelBatch picks the batch kind from the manifest', async (t) => {
  const dir = scratchDir(t);
  await prepare(join(dir, 'causal'));
  await prepare(join(dir, 's2s'), { layout: 'seq2seq' });
  const causal = openDataCache(join(dir, 'causal'));
  const b = assembleModelBatch(causal.manifest, causal.train, [0, 1], { completionOnlyLoss: true });
  assert.ok('kind' in b && b.kind === 'causal');
  assert.equal(b.labels[0], IGNORE_INDEX);
  const s2s = openDataCache(join(dir, 's2s'));
  const s = assembleModelBatch(s2s.manifest, s2s.train, [0, 1]);
  assert.ok(!('kind' in s) && 'srcLen' in s);
  assert.throws(() => assembleModelBatch(s2s.manifest, s2s.train, [0], { completionOnlyLoss: true }), /for causal caches/u);
});

test('a worker-thread encoder with the added tokens writes the same causal cache as the inline one', async (t) => {
  const dir = scratchDir(t);
  const spec = fixture('t5-style-tokenizer');
  const tokenizer = loadTokenizer(spec);
  const common = { tokenizer, tokenizerSpec: spec, prefixTokens: 'added' as const, rulesOverrides: { korean_only: false } };
  await prepare(join(dir, 'inline'), common);
  const rules = openRules({ korean_only: false });
  const pool = await WorkerPoolEncoder.start(spec, encodingTokenizer(tokenizer, rules, 'causal', 'added').fingerprint, 1, prefixAddedTokens(rules, 'added'));
  try {
    await prepare(join(dir, 'pool'), { ...common, encoder: pool });
  } finally {
    await pool.close();
  }
  const a = openDataCache(join(dir, 'inline'), { verifyChecksums: true });
  const b = openDataCache(join(dir, 'pool'), { verifyChecksums: true });
  assert.deepEqual(b.manifest.splits, a.manifest.splits);
  assert.equal(a.train.inputIds(0)[0], tokenizer.vocabSize);
});
