import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { hangulShare } from '../../../shared/data/text-rules.js';
import { prepareData } from '../../../shared/data/prepare.js';
import { resolveRules } from '../../../shared/data/data-rules.js';
import { synthRow, writeSyntheticSet, type SynthRow } from '../../../shared/data/synth.js';
import { ByteTokenizer } from '../../../shared/tokenizer/byte-tokenizer.js';
import { scratchDir } from './helpers.js';

const bytes = new ByteTokenizer();
const read = (f: string): SynthRow[] => readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as SynthRow);

test('V4-shaped rows: inputs 500-999 tokens, mean about 725, about 10 phrases, Korean-looking', async (t) => {
  const dir = scratchDir(t);
  const s = await writeSyntheticSet({ trainOut: join(dir, 'train.jsonl'), evalOut: join(dir, 'eval.jsonl'), train: 400, eval: 50, seed: 3, tokenizer: bytes });
  const rows = [...read(join(dir, 'train.jsonl')), ...read(join(dir, 'eval.jsonl'))];
  assert.equal(rows.length, 450);
  const lengths = rows.map((r) => bytes.encode(`generate keyphrases: ${r.title} ${r.body}`).length + 1);
  assert.ok(lengths.every((n) => n >= 500 && n <= 999), `range ${Math.min(...lengths)}..${Math.max(...lengths)}`);
  const mean = lengths.reduce((a, b) => a + b, 0) / lengths.length;
  // Target lengths have sd ~85 tokens, so the mean of 450 is within ~4 tokens (1 sd) of 725; 25 is > 5 sd.
  assert.ok(Math.abs(mean - 725) < 25, `mean ${mean}`);
  assert.equal(s.input_tokens.mean, Math.round(mean * 10) / 10, 'counted lengths are exact for bytes');
  const phrases = rows.map((r) => r.keyphrases.split('; '));
  const tens = phrases.filter((p) => p.length === 10).length / rows.length;
  assert.ok(tens > 0.9 && phrases.every((p) => p.length >= 7 && p.length <= 10), `share of 10-phrase labels ${tens}`);
  assert.ok(phrases.every((p) => new Set(p).size === p.length), 'no repeated phrase in a label');
  assert.ok(rows.every((r) => hangulShare(r.body) > 0.9));
  const verbatim = phrases.flat().length && rows.reduce((n, r, i) => n + phrases[i]!.filter((p) => `${r.title} ${r.body}`.includes(p)).length, 0) / phrases.flat().length;
  assert.ok(verbatim > 0.9, `verbatim share ${verbatim}`);
  assert.equal(new Set(rows.map((r) => r.id)).size, 450);
});

test('same seed, same rows; another seed, other rows', () => {
  assert.deepEqual(synthRow(bytes, 1, 17), synthRow(bytes, 1, 17));
  assert.notDeepEqual(synthRow(bytes, 1, 17).row.body, synthRow(bytes, 2, 17).row.body);
  assert.notDeepEqual(synthRow(bytes, 1, 17).row.body, synthRow(bytes, 1, 18).row.body);
});

test('prepare keeps every synthetic row under the V4 input window', async (t) => {
  const dir = scratchDir(t);
  await writeSyntheticSet({ trainOut: join(dir, 'train.jsonl'), evalOut: join(dir, 'eval.jsonl'), train: 120, eval: 30, seed: 4, tokenizer: bytes });
  // Byte tokens: a 10-phrase target is ~100-150 bytes, so the 64-token target limit is raised.
  const r = await prepareData({
    inputs: [join(dir, 'train.jsonl')],
    evalFiles: [join(dir, 'eval.jsonl')],
    tokenizer: bytes,
    tokenizerSpec: 'builtin',
    rules: resolveRules('v4', [{ max_target_tokens: 256 }]),
    outDir: join(dir, 'cache'),
  });
  assert.deepEqual(r.kept, { total: 150, train: 120, eval: 30 });
  assert.ok(Object.values(r.dropped).every((n) => n === 0));
});
