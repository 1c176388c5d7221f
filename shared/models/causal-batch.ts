import { IGNORE_INDEX } from './batch.js';

// One micro-batch for a decoder-only (causal LM) model, row-major, HF's layout: `labels` are
// aligned with `inputIds` (not shifted); the model shifts inside, position t predicting label
// t + 1, as GPTNeoXForCausalLM does. Training pads on the right, generation on the left.
export interface CausalLmBatch {
  readonly kind: 'causal';
  readonly batchSize: number;
  /** Sequence length (tokens per row, padded). */
  readonly seqLen: number;
  /** [batchSize, seqLen] token ids; padding uses the tokenizer's pad id. */
  readonly inputIds: Int32Array;
  /** [batchSize, seqLen] 1 for real tokens, 0 for padding. */
  readonly attentionMask: Int32Array;
  /** [batchSize, seqLen] the ids the loss scores, -100 where ignored (padding, and the prompt when the loss is on the target only). */
  readonly labels: Int32Array;
}

/** One causal example: the whole sequence and which of its positions the loss scores. */
export interface CausalLmExample {
  readonly inputIds: ArrayLike<number>;
  /** Same length as inputIds: the id, or -100 where the loss ignores the position. */
  readonly labels: ArrayLike<number>;
}

/** Pad on the right to the longest row (rounded up to `padToMultipleOf`): ids with `padId`, mask 0, labels -100. */
export function padCausalBatch(examples: readonly CausalLmExample[], padId: number, padToMultipleOf = 1): CausalLmBatch {
  const batchSize = examples.length;
  if (batchSize === 0) throw new RangeError('padCausalBatch: no examples');
  if (!Number.isSafeInteger(padToMultipleOf) || padToMultipleOf < 1) throw new RangeError(`padCausalBatch: padToMultipleOf must be a positive integer, got ${padToMultipleOf}`);
  const longest = Math.max(...examples.map((e) => e.inputIds.length));
  if (longest === 0) throw new RangeError('padCausalBatch: every example is empty');
  const seqLen = Math.ceil(longest / padToMultipleOf) * padToMultipleOf;
  const inputIds = new Int32Array(batchSize * seqLen).fill(padId);
  const attentionMask = new Int32Array(batchSize * seqLen);
  const labels = new Int32Array(batchSize * seqLen).fill(IGNORE_INDEX);
  examples.forEach((e, r) => {
    if (e.labels.length !== e.inputIds.length) throw new RangeError(`padCausalBatch: example ${r} has ${e.inputIds.length} ids but ${e.labels.length} labels`);
    inputIds.set(e.inputIds, r * seqLen);
    attentionMask.fill(1, r * seqLen, r * seqLen + e.inputIds.length);
    labels.set(e.labels, r * seqLen);
  });
  return { kind: 'causal', batchSize, seqLen, inputIds, attentionMask, labels };
}
