import { padSeq2SeqBatch, type Seq2SeqBatch } from '../models/batch.js';
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
  if (indices.length === 0) throw new RangeError('assembleBatch: no samples (a rank with an empty share runs no micro-batch)');
  const examples = Array.from(indices, (i) => ({ inputIds: split.inputIds(i), labelIds: split.labelIds(i) }));
  return padSeq2SeqBatch(examples, padId, options.padToMultipleOf ?? 1);
}
