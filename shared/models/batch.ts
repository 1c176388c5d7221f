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
