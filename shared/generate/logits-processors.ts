import type { SpecialTokens } from './generate-options.js';

// What HF's logits processors do to one row of scores before a token is chosen, and the small
// numeric helpers the searches share. Scores are log-probabilities here (HF: logits for greedy,
// log-probabilities for beam search); the processors only set entries to -inf, or (the forced-token
// ones) a whole row to -inf but one 0, which chooses the same token from either.

export interface ProcessorSettings {
  readonly noRepeatNgramSize: number;
  readonly minNewTokens: number;
  readonly eosId: number;
  /** Tokens generated at most (HF max_length - decoder input length); where ForcedEOS applies. */
  readonly maxNewTokens: number;
  /** ForcedBOSTokenLogitsProcessor's token; null: off. */
  readonly forcedBosId: number | null;
  /** ForcedEOSTokenLogitsProcessor's token; null: off. */
  readonly forcedEosId: number | null;
}

/** The processor settings of a search, from its options and the model's special tokens. */
export function processorSettings(o: { readonly noRepeatNgramSize: number; readonly minNewTokens: number; readonly maxNewTokens: number }, special: SpecialTokens): ProcessorSettings {
  return {
    noRepeatNgramSize: o.noRepeatNgramSize,
    minNewTokens: o.minNewTokens,
    maxNewTokens: o.maxNewTokens,
    eosId: special.eosId,
    forcedBosId: special.forcedBosId ?? null,
    forcedEosId: special.forcedEosId ?? null,
  };
}

/**
 * NoRepeatNGramLogitsProcessor: the tokens that would complete an n-gram already present in
 * `sequence` (the decoder input so far, start token included, as HF's `input_ids`). With n = 1 every
 * token seen is banned.
 */
export function bannedNgramTokens(sequence: readonly number[], n: number): number[] {
  const len = sequence.length;
  if (n <= 0 || len + 1 < n) return [];
  const prefixStart = len - (n - 1);
  const banned: number[] = [];
  for (let i = 0; i + n - 1 < len; i++) {
    let match = true;
    for (let j = 0; j < n - 1; j++) {
      if (sequence[i + j] !== sequence[prefixStart + j]) {
        match = false;
        break;
      }
    }
    if (match) banned.push(sequence[i + n - 1]!);
  }
  return banned;
}

/** Every entry -inf but `token`'s, which becomes 0 (log-probability 1): HF's forced-token processors. */
function forceToken(scores: Float32Array | Float64Array, token: number): void {
  scores.fill(-Infinity);
  scores[token] = 0;
}

/**
 * Apply the processors in place to `scores` (one row over the vocabulary), in HF's order
 * (_get_logits_processor): NoRepeatNGram, MinNewTokensLength, ForcedBOS, ForcedEOS. `sequence` is
 * the decoder input so far (start token first); `generated` how many tokens were generated before
 * this one (MinNewTokensLength bans eos while it is below min_new_tokens).
 *
 * The forced processors replace the whole row, so they win over the others. HF counts in cur_len =
 * decoder input length (start token + generated): ForcedBOS acts at cur_len 1 (the first new
 * token), ForcedEOS at cur_len max_length - 1, where generate() sets max_length to max_new_tokens
 * plus the decoder input's length 1, i.e. on the max_new_tokens-th new token. The forced token's
 * score is 0, not its log-probability: beam search adds that 0 to the beam's sum, as HF does.
 */
export function processScores(scores: Float32Array | Float64Array, sequence: readonly number[], generated: number, s: ProcessorSettings): void {
  if (s.noRepeatNgramSize > 0) for (const t of bannedNgramTokens(sequence, s.noRepeatNgramSize)) scores[t] = -Infinity;
  if (generated < s.minNewTokens) scores[s.eosId] = -Infinity;
  if (s.forcedBosId !== null && generated === 0) forceToken(scores, s.forcedBosId);
  if (s.forcedEosId !== null && generated === s.maxNewTokens - 1) forceToken(scores, s.forcedEosId);
}

/** Index of the largest entry, the first one on ties (as torch.argmax). */
export function argmax(row: Float32Array | Float64Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/**
 * Indices of the `k` largest entries, largest first; ties keep the lower index first. NaN counts as
 * -inf. A sorted buffer of k entries suffices: k is 2 x num_beams, small beside the vocabulary.
 */
export function topIndices(values: Float32Array | Float64Array, k: number): number[] {
  const idx: number[] = [];
  const val: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = Number.isNaN(values[i]!) ? -Infinity : values[i]!;
    if (idx.length === k && !(v > val[k - 1]!)) continue;
    let at = idx.length === k ? k - 1 : idx.length;
    while (at > 0 && val[at - 1]! < v) {
      val[at] = val[at - 1]!;
      idx[at] = idx[at - 1]!;
      at--;
    }
    val[at] = v;
    idx[at] = i;
  }
  return idx;
}
