import { IGNORE_INDEX, type Seq2SeqBatch } from '../models/batch.js';
import type { DataSplit } from './data-cache.js';

export interface AssembleOptions {
  /** Round both padded lengths up to a multiple of this (fewer distinct shapes for ORT); default 1. */
  readonly padToMultipleOf?: number;
}

/**
 * The micro-batch of samples `indices` of `split`: inputs padded with `padId` to the longest input,
 * attention mask 1 on real tokens, labels (each ending in eos) padded with -100 to the longest label.
 */
export function assembleBatch(split: DataSplit, indices: ArrayLike<number>, padId: number, options: AssembleOptions = {}): Seq2SeqBatch {
  const batchSize = indices.length;
  if (batchSize === 0) throw new RangeError('assembleBatch: no samples (a rank with an empty share runs no micro-batch)');
  const multiple = options.padToMultipleOf ?? 1;
  if (!Number.isSafeInteger(multiple) || multiple < 1) throw new RangeError(`assembleBatch: padToMultipleOf must be a positive integer, got ${multiple}`);
  let srcLen = 0;
  let tgtLen = 0;
  for (let r = 0; r < batchSize; r++) {
    srcLen = Math.max(srcLen, split.inputLength(indices[r]!));
    tgtLen = Math.max(tgtLen, split.labelLength(indices[r]!));
  }
  srcLen = Math.ceil(srcLen / multiple) * multiple;
  tgtLen = Math.ceil(tgtLen / multiple) * multiple;
  const inputIds = new Int32Array(batchSize * srcLen).fill(padId);
  const attentionMask = new Int32Array(batchSize * srcLen);
  const labels = new Int32Array(batchSize * tgtLen).fill(IGNORE_INDEX);
  for (let r = 0; r < batchSize; r++) {
    const i = indices[r]!;
    const src = split.inputIds(i);
    inputIds.set(src, r * srcLen);
    attentionMask.fill(1, r * srcLen, r * srcLen + src.length);
    labels.set(split.labelIds(i), r * tgtLen);
  }
  return { batchSize, srcLen, tgtLen, inputIds, attentionMask, labels };
}
