// Normal form for the field's exact-match metrics: Unicode NFKC (full-width Latin and digits,
// compatibility jamo and ligatures fold to their plain forms), every whitespace run becomes one
// space, ends trimmed, Latin letters lower-cased. Hangul has no case; other scripts (Greek,
// Cyrillic) are left alone because the field's metrics only promise Latin case-folding.
// No stemming: Porter stemming is English-only and Korean has no agreed equivalent.

const WHITESPACE_RUN = /\s+/gu;
const LATIN_RUN = /\p{Script=Latin}+/gu;

export function normaliseText(text: string): string {
  const spaced = text.normalize('NFKC').replace(WHITESPACE_RUN, ' ').trim();
  // Most Korean phrases have nothing to lower-case; skip the script-property scan for them.
  return spaced.toLowerCase() === spaced ? spaced : spaced.replace(LATIN_RUN, (latin) => latin.toLowerCase());
}

/** Normalise each phrase, drop those that become empty, keep the first of any duplicates. */
export function normalisePhrases(phrases: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const p of phrases) {
    const n = normaliseText(p);
    if (n === '' || seen.has(n)) continue;
    seen.add(n);
    out.push(n);
  }
  return out;
}
