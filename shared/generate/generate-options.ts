import { z } from 'zod';
import { KpCoordError } from '../errors.js';
import { formatZodIssues } from '../zod-issues.js';

// How to decode, with Hugging Face `generate()` names and defaults for T5 (camelCase here; the CLI
// spells them --num-beams etc.). Validated once where they enter; frozen afterwards.

export const GenerateOptionsSchema = z.strictObject({
  /** 1: greedy search; more: beam search (HF `num_beams`). */
  numBeams: z.number().int().min(1).max(64).default(1),
  /** Tokens generated at most, eos included (HF `max_new_tokens`). */
  maxNewTokens: z.number().int().min(1).max(4096).default(64),
  /** eos is forbidden before this many new tokens (HF `min_new_tokens`); benchmarks force lengths with it. */
  minNewTokens: z.number().int().min(0).default(0),
  /**
   * No n-gram of this size occurs twice in a decoder sequence (HF `no_repeat_ngram_size`); 0 is off.
   * A decoder-only model's sequence includes its prompt, as in HF (see causal-generator.ts).
   */
  noRepeatNgramSize: z.number().int().min(0).default(0),
  /** HF `length_penalty`: a finished beam scores sum(log p) / length ** lengthPenalty. */
  lengthPenalty: z.number().default(1.0),
  /**
   * HF `early_stopping`: false (default: stop when the best running beam, at its current length,
   * cannot beat the worst kept hypothesis), true (stop at num_beams finished), 'never' (exact bound).
   */
  earlyStopping: z.union([z.boolean(), z.literal('never')]).default(false),
  /** Decode with the key/value cache (HF `use_cache`); false re-runs the decoder over the whole prefix. */
  useCache: z.boolean().default(true),
  /** Articles encoded and decoded together. */
  batchSize: z.number().int().min(1).max(4096).default(8),
});

export type GenerateOptionsInput = z.input<typeof GenerateOptionsSchema>;
export type GenerateOptions = Readonly<z.output<typeof GenerateOptionsSchema>>;

/** Validate decoding options; the error names every bad field. */
export function parseGenerateOptions(input: GenerateOptionsInput = {}): GenerateOptions {
  const parsed = GenerateOptionsSchema.safeParse(input);
  if (!parsed.success) throw new KpCoordError(`invalid generation options: ${formatZodIssues(parsed.error)}`);
  const o = parsed.data;
  if (o.minNewTokens > o.maxNewTokens) throw new KpCoordError(`invalid generation options: minNewTokens ${o.minNewTokens} exceeds maxNewTokens ${o.maxNewTokens}`);
  return Object.freeze(o);
}

/** Token ids decoding needs, from the model's config. */
export interface SpecialTokens {
  readonly decoderStartId: number;
  readonly eosId: number;
  readonly padId: number;
  /** HF `forced_bos_token_id`: the only token allowed as the first new one; absent or null: none (T5, GPT-NeoX). */
  readonly forcedBosId?: number | null;
  /** HF `forced_eos_token_id`: the only token allowed as the max_new_tokens-th new one; absent or null: none. */
  readonly forcedEosId?: number | null;
}
