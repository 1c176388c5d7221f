import { z } from 'zod';
import type { ModelType } from '../data/data-cache.js';
import { InputFileError } from '../errors.js';
import { readJsonFile } from '../json-file.js';
import { IGNORE_INDEX, type Seq2SeqBatch } from './batch.js';
import type { CausalLmBatch } from './causal-batch.js';
import type { ModelBatch } from './model-family.js';

// A batch as people write it by hand or dump from transformers:
// {"input_ids": [[..]], "attention_mask": [[..]], "labels": [[..]]}, labels padded with -100.
// The keys are the same for both families, so the model's family says how to read them:
// - t5, bart (seq2seq): input_ids/attention_mask are the encoder's, labels the decoder's (any length).
// - gpt_neox (causal): one sequence per row; labels have input_ids' shape, unshifted as HF's
//   (the model shifts), -100 where ignored; padding on the right, where labels must be -100.
const Rows = z.array(z.array(z.number().int()).min(1)).min(1);
export const BatchJsonSchema = z.strictObject({
  input_ids: Rows,
  attention_mask: Rows.optional(),
  labels: Rows,
});

type Parsed = { ids: number[][]; mask: number[][]; labels: number[][] };

export function parseBatchJson(json: unknown, source: string): Seq2SeqBatch;
export function parseBatchJson(json: unknown, source: string, modelType: 't5' | 'bart'): Seq2SeqBatch;
export function parseBatchJson(json: unknown, source: string, modelType: 'gpt_neox'): CausalLmBatch;
export function parseBatchJson(json: unknown, source: string, modelType: ModelType): ModelBatch;
export function parseBatchJson(json: unknown, source: string, modelType: ModelType = 't5'): ModelBatch {
  const parsed = BatchJsonSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; ');
    throw new InputFileError(source, '', issues);
  }
  const { input_ids: ids, labels } = parsed.data;
  const mask = parsed.data.attention_mask ?? ids.map((row) => row.map(() => 1));
  const p: Parsed = { ids, mask, labels };
  if (mask.length !== ids.length || labels.length !== ids.length) {
    throw new InputFileError(source, '', `input_ids has ${ids.length} rows, attention_mask ${mask.length}, labels ${labels.length}`);
  }
  mask.forEach((r, i) => r.forEach((x, j) => {
    if (x !== 0 && x !== 1) throw new InputFileError(source, '', `attention_mask[${i}][${j}] is ${x}, not 0 or 1`);
  }));
  ids.forEach((r, i) => r.forEach((x, j) => {
    if (x < 0) throw new InputFileError(source, '', `input_ids[${i}][${j}] is ${x}; token ids are not negative`);
  }));
  labels.forEach((r, i) => r.forEach((x, j) => {
    if (x < 0 && x !== IGNORE_INDEX) throw new InputFileError(source, '', `labels[${i}][${j}] is ${x}; only -100 may be negative`);
  }));
  return modelType === 'gpt_neox' ? causalBatch(p, source) : seq2seqBatch(p, source);
}

function rect(source: string, name: string, rows: number[][], width: number, why = 'rows must all have'): void {
  rows.forEach((r, i) => {
    if (r.length !== width) throw new InputFileError(source, '', `${name}[${i}] has ${r.length} entries; ${why} ${width} (pad them)`);
  });
}

function seq2seqBatch({ ids, mask, labels }: Parsed, source: string): Seq2SeqBatch {
  const srcLen = ids[0]!.length;
  const tgtLen = labels[0]!.length;
  rect(source, 'input_ids', ids, srcLen);
  rect(source, 'attention_mask', mask, srcLen);
  rect(source, 'labels', labels, tgtLen);
  return {
    batchSize: ids.length,
    srcLen,
    tgtLen,
    inputIds: Int32Array.from(ids.flat()),
    attentionMask: Int32Array.from(mask.flat()),
    labels: Int32Array.from(labels.flat()),
  };
}

function causalBatch({ ids, mask, labels }: Parsed, source: string): CausalLmBatch {
  const seqLen = ids[0]!.length;
  rect(source, 'input_ids', ids, seqLen);
  rect(source, 'attention_mask', mask, seqLen);
  rect(source, 'labels', labels, seqLen, 'a causal batch\'s labels are aligned with input_ids (HF\'s unshifted labels), so every row must have');
  mask.forEach((r, i) => {
    const real = r.indexOf(0) < 0 ? r.length : r.indexOf(0);
    const j = r.findIndex((x, k) => k > real && x === 1);
    if (j >= 0) throw new InputFileError(source, '', `attention_mask[${i}][${j}] is 1 after padding at ${real}: training batches pad on the right (1s, then 0s)`);
    if (real === 0) throw new InputFileError(source, '', `attention_mask[${i}] is all 0: a row needs at least one token`);
    for (let k = real; k < r.length; k++) {
      if (labels[i]![k] !== IGNORE_INDEX) throw new InputFileError(source, '', `labels[${i}][${k}] is ${labels[i]![k]} on padding (attention_mask 0); padding must be -100`);
    }
  });
  return {
    kind: 'causal',
    batchSize: ids.length,
    seqLen,
    inputIds: Int32Array.from(ids.flat()),
    attentionMask: Int32Array.from(mask.flat()),
    labels: Int32Array.from(labels.flat()),
  };
}

export function readBatchJson(path: string): Seq2SeqBatch;
export function readBatchJson(path: string, modelType: 't5' | 'bart'): Seq2SeqBatch;
export function readBatchJson(path: string, modelType: 'gpt_neox'): CausalLmBatch;
export function readBatchJson(path: string, modelType: ModelType): ModelBatch;
export function readBatchJson(path: string, modelType: ModelType = 't5'): ModelBatch {
  return parseBatchJson(readJsonFile(path, 'batch file'), path, modelType);
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('') || '(root)';
}
