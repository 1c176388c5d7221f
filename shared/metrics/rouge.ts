// ROUGE-1/2/L F-measure of one candidate against one reference, on token lists, the way
// Google's rouge_score computes them per pair: n-gram overlap counts clipped to the smaller
// count; ROUGE-L from the longest common subsequence of the whole sequences (not the
// summary-level, sentence-split variant); F = 2PR/(P+R), 0 when there is no overlap.

export interface RougeScores {
  readonly rouge1: number;
  readonly rouge2: number;
  readonly rougeL: number;
}

function fMeasure(overlap: number, referenceCount: number, candidateCount: number): number {
  if (overlap === 0 || referenceCount === 0 || candidateCount === 0) return 0;
  const precision = overlap / candidateCount;
  const recall = overlap / referenceCount;
  return (2 * precision * recall) / (precision + recall);
}

function ngramCounts(tokens: readonly string[], n: number): Map<string, number> {
  const counts = new Map<string, number>();
  // Tokens never contain U+0000, so joining with it keys an n-gram unambiguously.
  for (let i = 0; i + n <= tokens.length; i++) {
    let key = tokens[i]!;
    for (let j = 1; j < n; j++) key += `\u0000${tokens[i + j]!}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

export function rougeN(reference: readonly string[], candidate: readonly string[], n: number): number {
  const ref = ngramCounts(reference, n);
  const cand = ngramCounts(candidate, n);
  let overlap = 0;
  for (const [gram, count] of cand) overlap += Math.min(count, ref.get(gram) ?? 0);
  const gramsIn = (tokens: readonly string[]): number => Math.max(0, tokens.length - n + 1);
  return fMeasure(overlap, gramsIn(reference), gramsIn(candidate));
}

/** Length of the longest common subsequence, O(|a|·|b|) time, O(|b|) memory. */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  let previous = new Array<number>(b.length + 1).fill(0);
  let current = new Array<number>(b.length + 1).fill(0);
  for (const x of a) {
    for (let j = 0; j < b.length; j++) {
      current[j + 1] = x === b[j] ? previous[j]! + 1 : Math.max(previous[j + 1]!, current[j]!);
    }
    [previous, current] = [current, previous];
  }
  return previous[b.length]!;
}

export function rougeL(reference: readonly string[], candidate: readonly string[]): number {
  return fMeasure(lcsLength(reference, candidate), reference.length, candidate.length);
}

export function rougeScores(reference: readonly string[], candidate: readonly string[]): RougeScores {
  return {
    rouge1: rougeN(reference, candidate, 1),
    rouge2: rougeN(reference, candidate, 2),
    rougeL: rougeL(reference, candidate),
  };
}
