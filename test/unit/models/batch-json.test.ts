import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { InputFileError } from '../../../shared/errors.js';
import { parseBatchJson, readBatchJson } from '../../../shared/models/batch-json.js';
import { scratchDir } from '../data/helpers.js';

// BATCH.json for `kp-coord dev grads`: the same keys for both families, read by the model's family.

const X = -100;

test('gpt_neox: a causal batch with HF\'s unshifted labels, right padding, -100 where ignored', (t) => {
  const file = join(scratchDir(t), 'batch.json');
  writeFileSync(file, JSON.stringify({ input_ids: [[5, 6, 7, 2], [8, 9, 2, 2]], attention_mask: [[1, 1, 1, 1], [1, 1, 0, 0]], labels: [[X, 6, 7, 2], [8, 9, X, X]] }));
  const b = readBatchJson(file, 'gpt_neox');
  assert.deepEqual([b.kind, b.batchSize, b.seqLen], ['causal', 2, 4]);
  assert.deepEqual([...b.inputIds], [5, 6, 7, 2, 8, 9, 2, 2]);
  assert.deepEqual([...b.attentionMask], [1, 1, 1, 1, 1, 1, 0, 0]);
  assert.deepEqual([...b.labels], [X, 6, 7, 2, 8, 9, X, X]);
  // Without a mask every token is real.
  const noMask = parseBatchJson({ input_ids: [[1, 2]], labels: [[1, 2]] }, 'b.json', 'gpt_neox');
  assert.deepEqual([...noMask.attentionMask], [1, 1]);
});

test('t5 (and no family: the old call) keeps the seq2seq reading: labels of their own length', () => {
  const json = { input_ids: [[40, 41, 1], [50, 1, 0]], attention_mask: [[1, 1, 1], [1, 1, 0]], labels: [[60, 1], [70, X]] };
  for (const b of [parseBatchJson(json, 'b.json'), parseBatchJson(json, 'b.json', 't5')]) {
    assert.deepEqual([b.batchSize, b.srcLen, b.tgtLen], [2, 3, 2]);
    assert.ok(!('kind' in b));
  }
});

test('causal mistakes name the file and the field', () => {
  const bad = (json: unknown, re: RegExp): void => {
    assert.throws(() => parseBatchJson(json, 'b.json', 'gpt_neox'), (e: unknown) => e instanceof InputFileError && e.message.startsWith('b.json: ') && re.test(e.message), String(re));
  };
  bad({ input_ids: [[1, 2, 3]], labels: [[1, 2]] }, /labels\[0\] has 2 entries; a causal batch's labels are aligned with input_ids \(HF's unshifted labels\), so every row must have 3/u);
  bad({ input_ids: [[1, 2], [3, 4]], attention_mask: [[1, 1], [0, 1]], labels: [[1, 2], [X, 4]] }, /attention_mask\[1\]\[1\] is 1 after padding at 0: training batches pad on the right/u);
  bad({ input_ids: [[1, 2]], attention_mask: [[1, 0]], labels: [[1, 2]] }, /labels\[0\]\[1\] is 2 on padding \(attention_mask 0\); padding must be -100/u);
  bad({ input_ids: [[1, 2]], attention_mask: [[0, 0]], labels: [[X, X]] }, /attention_mask\[0\] is all 0/u);
  bad({ input_ids: [[1, -2]], labels: [[1, 2]] }, /input_ids\[0\]\[1\] is -2; token ids are not negative/u);
  bad({ input_ids: [[1, 2]], labels: [[1, -5]] }, /labels\[0\]\[1\] is -5; only -100 may be negative/u);
  bad({ input_ids: [[1, 2]], labels: [[1, 2]], decoder_input_ids: [[1]] }, /Unrecognized key/u);
  bad({ input_ids: [[1, 2]] }, /labels: /u);
});
