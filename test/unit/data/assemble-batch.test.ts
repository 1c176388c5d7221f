import assert from 'node:assert/strict';
import test from 'node:test';
import { assembleBatch } from '../../../shared/data/assemble-batch.js';
import type { DataSplit } from '../../../shared/data/data-cache.js';
import { IGNORE_INDEX } from '../../../shared/models/batch.js';

// A split of three hand-written samples (ids end in eos = 1).
const INPUTS = [Uint16Array.of(10, 11, 12, 1), Uint16Array.of(20, 1), Uint16Array.of(30, 31, 1)];
const LABELS = [Uint16Array.of(5, 1), Uint16Array.of(6, 7, 8, 1), Uint16Array.of(1)];
const split: DataSplit = {
  name: 'train',
  size: 3,
  inputIds: (i) => INPUTS[i]!,
  labelIds: (i) => LABELS[i]!,
  inputLength: (i) => INPUTS[i]!.length,
  labelLength: (i) => LABELS[i]!.length,
  source: (i) => ({ id: String(i), file: 'f', line: i + 1 }),
};

test('inputs padded with the pad id, mask 1 on real tokens, labels padded with -100', () => {
  const b = assembleBatch(split, [1, 0, 2], 0);
  assert.deepEqual([b.batchSize, b.srcLen, b.tgtLen], [3, 4, 4]);
  assert.deepEqual([...b.inputIds], [20, 1, 0, 0, 10, 11, 12, 1, 30, 31, 1, 0]);
  assert.deepEqual([...b.attentionMask], [1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0]);
  const X = IGNORE_INDEX;
  assert.deepEqual([...b.labels], [6, 7, 8, 1, 5, 1, X, X, 1, X, X, X]);
  assert.ok(b.inputIds instanceof Int32Array && b.labels instanceof Int32Array && b.attentionMask instanceof Int32Array);
});

test('pad to a multiple; another pad id; one row; no rows is an error', () => {
  const b = assembleBatch(split, [2], 3, { padToMultipleOf: 8 });
  assert.deepEqual([b.srcLen, b.tgtLen], [8, 8]);
  assert.deepEqual([...b.inputIds], [30, 31, 1, 3, 3, 3, 3, 3]);
  assert.deepEqual([...b.attentionMask], [1, 1, 1, 0, 0, 0, 0, 0]);
  assert.deepEqual([...b.labels], [1, -100, -100, -100, -100, -100, -100, -100]);
  assert.throws(() => assembleBatch(split, [], 0), /no samples/u);
  assert.throws(() => assembleBatch(split, [0], 0, { padToMultipleOf: 0 }), /padToMultipleOf/u);
});
