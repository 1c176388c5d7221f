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

/** Pad examples to the longest row: inputs with `padId` (mask 0), labels with -100. */
export function padSeq2SeqBatch(examples: readonly Seq2SeqExample[], padId: number): Seq2SeqBatch {
  const batchSize = examples.length;
  if (batchSize === 0) throw new RangeError('padSeq2SeqBatch: no examples');
  const srcLen = Math.max(...examples.map((e) => e.inputIds.length));
  const tgtLen = Math.max(...examples.map((e) => e.labelIds.length));
  if (srcLen === 0 || tgtLen === 0) throw new RangeError('padSeq2SeqBatch: an example has no input or no label tokens');
  const inputIds = new Int32Array(batchSize * srcLen).fill(padId);
  const attentionMask = new Int32Array(batchSize * srcLen);
  const labels = new Int32Array(batchSize * tgtLen).fill(IGNORE_INDEX);
  examples.forEach((e, b) => {
    for (let i = 0; i < e.inputIds.length; i++) {
      inputIds[b * srcLen + i] = e.inputIds[i]!;
      attentionMask[b * srcLen + i] = 1;
    }
    for (let i = 0; i < e.labelIds.length; i++) labels[b * tgtLen + i] = e.labelIds[i]!;
  });
  return { batchSize, srcLen, tgtLen, inputIds, attentionMask, labels };
}
