import { z } from 'zod';
import { InputFileError } from '../errors.js';
import { readJsonFile } from '../json-file.js';
import { IGNORE_INDEX, type Seq2SeqBatch } from './batch.js';

// A batch as people write it by hand or dump from transformers:
// {"input_ids": [[..]], "attention_mask": [[..]], "labels": [[..]]}, labels padded with -100.
const Rows = z.array(z.array(z.number().int()).min(1)).min(1);
export const BatchJsonSchema = z.strictObject({
  input_ids: Rows,
  attention_mask: Rows.optional(),
  labels: Rows,
});

export function parseBatchJson(json: unknown, source: string): Seq2SeqBatch {
  const parsed = BatchJsonSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('; ');
    throw new InputFileError(source, '', issues);
  }
  const { input_ids: ids, labels } = parsed.data;
  const mask = parsed.data.attention_mask ?? ids.map((row) => row.map(() => 1));
  const rect = (name: string, rows: number[][], width: number) =>
    rows.forEach((r, i) => {
      if (r.length !== width) throw new InputFileError(source, '', `${name}[${i}] has ${r.length} entries; rows must all have ${width} (pad them)`);
    });
  const srcLen = ids[0]!.length;
  const tgtLen = labels[0]!.length;
  rect('input_ids', ids, srcLen);
  rect('attention_mask', mask, srcLen);
  rect('labels', labels, tgtLen);
  if (mask.length !== ids.length || labels.length !== ids.length) {
    throw new InputFileError(source, '', `input_ids has ${ids.length} rows, attention_mask ${mask.length}, labels ${labels.length}`);
  }
  mask.forEach((r, i) => r.forEach((x, j) => {
    if (x !== 0 && x !== 1) throw new InputFileError(source, '', `attention_mask[${i}][${j}] is ${x}, not 0 or 1`);
  }));
  labels.forEach((r, i) => r.forEach((x, j) => {
    if (x < 0 && x !== IGNORE_INDEX) throw new InputFileError(source, '', `labels[${i}][${j}] is ${x}; only -100 may be negative`);
  }));
  return {
    batchSize: ids.length,
    srcLen,
    tgtLen,
    inputIds: Int32Array.from(ids.flat()),
    attentionMask: Int32Array.from(mask.flat()),
    labels: Int32Array.from(labels.flat()),
  };
}

export function readBatchJson(path: string): Seq2SeqBatch {
  return parseBatchJson(readJsonFile(path, 'batch file'), path);
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('') || '(root)';
}
