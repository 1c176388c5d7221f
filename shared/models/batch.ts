// One micro-batch for a sequence-to-sequence model, row-major, padded to the longest row.
// Int32 ids (ORT's Gather and SoftmaxCrossEntropyLoss take int32 indices; no BigInt64 cost in JS).
export interface Seq2SeqBatch {
  readonly batchSize: number;
  /** Encoder length (input tokens per row, padded). */
  readonly srcLen: number;
  /** Decoder length (label tokens per row, padded). */
  readonly tgtLen: number;
  /** [batchSize, srcLen] token ids; padding uses the tokenizer's pad id. */
  readonly inputIds: Int32Array;
  /** [batchSize, srcLen] 1 for real tokens, 0 for padding. */
  readonly attentionMask: Int32Array;
  /** [batchSize, tgtLen] target ids ending in eos; padding is -100 (ignored by the loss). */
  readonly labels: Int32Array;
}

export const IGNORE_INDEX = -100;

/** One example as token ids (both ending in eos). */
export interface Seq2SeqExample {
  readonly inputIds: ArrayLike<number>;
  readonly labelIds: ArrayLike<number>;
}

/**
 * Pad examples to the longest row: inputs with `padId` (mask 0), labels with -100. Lengths may be
 * rounded up to a multiple of `padToMultipleOf` (fewer distinct shapes for ORT).
 */
export function padSeq2SeqBatch(examples: readonly Seq2SeqExample[], padId: number, padToMultipleOf = 1): Seq2SeqBatch {
  const batchSize = examples.length;
  if (batchSize === 0) throw new RangeError('padSeq2SeqBatch: no examples');
  if (!Number.isSafeInteger(padToMultipleOf) || padToMultipleOf < 1) throw new RangeError(`padSeq2SeqBatch: padToMultipleOf must be a positive integer, got ${padToMultipleOf}`);
  const round = (n: number) => Math.ceil(n / padToMultipleOf) * padToMultipleOf;
  const srcLen = round(Math.max(...examples.map((e) => e.inputIds.length)));
  const tgtLen = round(Math.max(...examples.map((e) => e.labelIds.length)));
  if (srcLen === 0 || tgtLen === 0) throw new RangeError('padSeq2SeqBatch: an example has no input or no label tokens');
  const inputIds = new Int32Array(batchSize * srcLen).fill(padId);
  const attentionMask = new Int32Array(batchSize * srcLen);
  const labels = new Int32Array(batchSize * tgtLen).fill(IGNORE_INDEX);
  examples.forEach((e, r) => {
    inputIds.set(e.inputIds, r * srcLen);
    attentionMask.fill(1, r * srcLen, r * srcLen + e.inputIds.length);
    labels.set(e.labelIds, r * tgtLen);
  });
  return { batchSize, srcLen, tgtLen, inputIds, attentionMask, labels };
}
