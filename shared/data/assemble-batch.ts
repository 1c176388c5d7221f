import { IGNORE_INDEX, padSeq2SeqBatch, type Seq2SeqBatch } from '../models/batch.js';
import { padCausalBatch, type CausalLmBatch } from '../models/causal-batch.js';
import type { ModelBatch } from '../models/model-family.js';
import { cacheLayout, type CacheManifest } from './cache-format.js';
import type { DataSplit } from './data-cache.js';

export interface AssembleOptions {
  /** Round both padded lengths up to a multiple of this (fewer distinct shapes for ORT); default 1. */
  readonly padToMultipleOf?: number;
}

export interface CausalAssembleOptions extends AssembleOptions {
  /**
   * TRL's SFTConfig name (DataCollatorForCompletionOnlyLM's effect): score only the completion
   * (keyphrases + eos); the prompt's labels are -100. Default false: the loss is on the whole
   * sequence, as the team's runs had it (HF DataCollatorForLanguageModeling, mlm=False).
   */
  readonly completionOnlyLoss?: boolean;
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

/**
 * The causal micro-batch of samples `indices` of a causal split: each row is prompt + completion
 * (the completion ends in eos), padded on the right with `padId`; labels are the ids themselves
 * (HF's unshifted labels: the model shifts), -100 on padding and, with completionOnlyLoss, on the prompt.
 */
export function assembleCausalBatch(split: DataSplit, indices: ArrayLike<number>, padId: number, options: CausalAssembleOptions = {}): CausalLmBatch {
  if (indices.length === 0) throw new RangeError('assembleCausalBatch: no samples (a rank with an empty share runs no micro-batch)');
  const examples = Array.from(indices, (i) => {
    const prompt = split.inputIds(i);
    const completion = split.labelIds(i);
    const inputIds = new Int32Array(prompt.length + completion.length);
    inputIds.set(prompt, 0);
    inputIds.set(completion, prompt.length);
    const labels = Int32Array.from(inputIds);
    if (options.completionOnlyLoss) labels.fill(IGNORE_INDEX, 0, prompt.length);
    return { inputIds, labels };
  });
  return padCausalBatch(examples, padId, options.padToMultipleOf ?? 1);
}

/**
 * The batch the cache's layout calls for (what a worker calls): seq2seq caches give a
 * Seq2SeqBatch, causal ones a CausalLmBatch; padded with the manifest's pad id.
 */
export function assembleModelBatch(manifest: CacheManifest, split: DataSplit, indices: ArrayLike<number>, options: CausalAssembleOptions = {}): ModelBatch {
  const padId = manifest.tokenizer.pad_id;
  if (cacheLayout(manifest) === 'causal') return assembleCausalBatch(split, indices, padId, options);
  if (options.completionOnlyLoss) throw new RangeError('assembleModelBatch: completionOnlyLoss is for causal caches; a seq2seq batch scores its labels only anyway');
  return assembleBatch(split, indices, padId, options);
}
