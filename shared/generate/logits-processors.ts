// What HF's logits processors do to one row of scores before a token is chosen, and the small
// numeric helpers the searches share. Scores are log-probabilities here (HF: logits for greedy,
// log-probabilities for beam search); both processors only set entries to -inf, so either is fine.

export interface ProcessorSettings {
  readonly noRepeatNgramSize: number;
  readonly minNewTokens: number;
  readonly eosId: number;
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

/**
 * Apply the processors in place to `scores` (one row over the vocabulary). `sequence` is the
 * decoder input so far (start token first); `generated` how many tokens were generated before this
 * one (MinNewTokensLengthLogitsProcessor bans eos while it is below min_new_tokens).
 */
export function processScores(scores: Float32Array | Float64Array, sequence: readonly number[], generated: number, s: ProcessorSettings): void {
  if (generated < s.minNewTokens) scores[s.eosId] = -Infinity;
  if (s.noRepeatNgramSize > 0) for (const t of bannedNgramTokens(sequence, s.noRepeatNgramSize)) scores[t] = -Infinity;
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
