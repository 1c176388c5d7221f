// The team's own metrics, reproduced exactly (../shared/data/README.md defines them): no
// normalisation, lists not sets, only the prediction cut to its first k phrases. Kept apart from
// the field's metrics because they answer a different question (lenient, substring-matched) and
// because their job is to agree with numbers the team has already printed.

/** Lenient F1@k of one sample: a phrase matches when either string contains the other. */
export function teamF1AtK(gold: readonly string[], prediction: readonly string[], k: number): number {
  const top = prediction.slice(0, k);
  const matches = (a: string, b: string): boolean => a.includes(b) || b.includes(a);
  let tp = 0;
  for (const p of top) if (gold.some((g) => matches(p, g))) tp += 1;
  const fp = top.length - tp;
  let fn = 0;
  for (const g of gold) if (!top.some((p) => matches(p, g))) fn += 1;
  // Note the team's recall, TP/(TP+FN): TP counts predictions, FN counts gold phrases, so it is
  // not matched-gold/|gold|. Reproduced as written because their figures depend on it.
  const precision = tp + fp > 0 ? tp / (tp + fp) : 0;
  const recall = tp + fn > 0 ? tp / (tp + fn) : 0;
  if (precision === 0 || recall === 0) return 0;
  return (2 * precision * recall) / (precision + recall);
}

/** Jaccard@k of one sample: |set(gold) ∩ set(top k)| / (len(gold) + len(top k) - that). */
export function teamJaccardAtK(gold: readonly string[], prediction: readonly string[], k: number): number {
  const top = prediction.slice(0, k);
  const goldSet = new Set(gold);
  let common = 0;
  for (const p of new Set(top)) if (goldSet.has(p)) common += 1;
  const denominator = gold.length + top.length - common;
  return denominator > 0 ? common / denominator : 0;
}
