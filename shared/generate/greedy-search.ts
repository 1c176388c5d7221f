import type { DecoderStepper } from './decoder-stepper.js';
import type { GenerateOptions, SpecialTokens } from './generate-options.js';
import { argmax, processorSettings, processScores } from './logits-processors.js';

// Greedy search as HF's `generate(num_beams=1, do_sample=False)`: start from the decoder start
// token, take the argmax of the processed scores (log-probabilities here: the same argmax as HF's on
// logits, a shift per row), stop a row at eos (kept in its output) or after max_new_tokens. Finished rows leave the batch instead of being fed pad tokens (same result).

export interface GeneratedSequence {
  /** New tokens, eos included when the sequence ended with it (no start token, no padding). */
  readonly tokens: number[];
  /** Beam search: sum of log-probabilities / length ** length_penalty (HF `sequences_scores`); greedy: null. */
  readonly score: number | null;
}

export type SearchOptions = Pick<GenerateOptions, 'maxNewTokens' | 'minNewTokens' | 'noRepeatNgramSize'>;

/**
 * What HF's `input_ids` holds before the generated tokens, per item, for NoRepeatNGram: T5's decoder
 * start token (the default), a decoder-only model's whole left-padded prompt (see causal-generator.ts).
 */
export type SequencePrefixes = readonly (readonly number[])[];

export async function greedySearch(stepper: DecoderStepper, o: SearchOptions, special: SpecialTokens, prefixes?: SequencePrefixes): Promise<GeneratedSequence[]> {
  if (stepper.beams !== 1) throw new RangeError(`greedy search needs a stepper with 1 beam, got ${stepper.beams}`);
  const items = stepper.items;
  const out: number[][] = Array.from({ length: items }, () => []);
  const settings = processorSettings(o, special);
  let active = Array.from({ length: items }, (_, i) => i); // original item of each stepper row
  let tokens = new Int32Array(items).fill(special.decoderStartId);
  for (let step = 0; step < o.maxNewTokens && active.length > 0; step++) {
    const scores = await stepper.next(tokens);
    const vocab = scores.length / active.length;
    const kept: number[] = [];
    const next: number[] = [];
    active.forEach((item, r) => {
      const row = scores.subarray(r * vocab, (r + 1) * vocab);
      processScores(row, [...(prefixes?.[item] ?? [special.decoderStartId]), ...out[item]!], step, settings);
      const token = argmax(row);
      out[item]!.push(token);
      if (token !== special.eosId) {
        kept.push(r);
        next.push(token);
      }
    });
    if (kept.length < active.length && kept.length > 0 && step + 1 < o.maxNewTokens) stepper.select(kept, kept);
    active = kept.map((r) => active[r]!);
    tokens = Int32Array.from(next);
  }
  return out.map((tokens) => ({ tokens, score: null }));
}
