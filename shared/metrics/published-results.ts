// Figures the team printed for evaluation files we have, recognised by the file's sha256, so a
// report on the same file can put their numbers beside ours. Their ROUGE used the Komoran
// morpheme tokenizer, which kp-coord does not have; those numbers are quoted, not recomputed.

export interface PublishedResult {
  readonly name: string;
  readonly k: number;
  readonly f1AtK: number;
  readonly jaccardAtK: number;
  readonly rouge1: number;
  readonly rouge2: number;
  readonly rougeL: number;
  readonly rougeTokenizer: string;
}

const PUBLISHED: ReadonlyMap<string, PublishedResult> = new Map([
  [
    '8d7969cd0230d071d14dcd572050b1aa66f0650d5dfb4926358e9d2de18d323a',
    {
      name: 'seed-eval-pairs/polyglot-ko-1.3b-v4-run13.jsonl (polyglot-ko-1.3b, run 13)',
      k: 10,
      f1AtK: 61.0273,
      jaccardAtK: 25.3944,
      rouge1: 50.1822,
      rouge2: 35.8062,
      rougeL: 42.1194,
      rougeTokenizer: 'Komoran morphemes',
    },
  ],
]);

export function publishedResultFor(sha256: string | null): PublishedResult | null {
  return sha256 === null ? null : (PUBLISHED.get(sha256) ?? null);
}
