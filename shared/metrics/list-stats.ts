import { normaliseText } from './normalise.js';

// Shape of a set of keyphrase lists (gold or predicted): how many phrases, how long, how often a
// list repeats itself. Repeats are judged on normal forms (normalise.ts), lengths are counted in
// Unicode code points of the normal form (a Hangul syllable is one).

export interface HistogramBin {
  readonly label: string;
  readonly count: number;
}

export interface ListStats {
  readonly lists: number;
  readonly meanPhrases: number;
  readonly meanUniquePhrases: number;
  readonly meanPhraseChars: number;
  /** Characters of all phrases of a list together, separators not counted. */
  readonly meanListChars: number;
  readonly shareWithRepeatedPhrase: number;
  readonly shareEmpty: number;
  /** Lists with fewer than k distinct phrases (where the @k padding rule matters). */
  readonly shareFewerThanK: number;
  readonly phrasesPerList: HistogramBin[];
  readonly phraseChars: HistogramBin[];
}

/** Counts of integer values in bins lo..hi, the last bin also holding everything above hi. */
export function histogram(values: readonly number[], lo: number, hi: number): HistogramBin[] {
  const counts = new Array<number>(hi - lo + 1).fill(0);
  for (const v of values) counts[Math.min(Math.max(v, lo), hi) - lo]! += 1;
  return counts.map((count, i) => ({ label: i + lo === hi ? `${hi}+` : String(i + lo), count }));
}

const codePoints = (s: string): number => [...s].length;

export function listStats(lists: readonly (readonly string[])[], k: number): ListStats {
  let phrases = 0;
  let unique = 0;
  let chars = 0;
  let repeated = 0;
  let empty = 0;
  let fewer = 0;
  const perList: number[] = [];
  const phraseLengths: number[] = [];
  for (const list of lists) {
    const normal = list.map(normaliseText).filter((p) => p !== '');
    const distinct = new Set(normal).size;
    phrases += list.length;
    unique += distinct;
    perList.push(list.length);
    for (const p of normal) {
      const n = codePoints(p);
      phraseLengths.push(n);
      chars += n;
    }
    if (distinct < normal.length) repeated += 1;
    if (list.length === 0) empty += 1;
    if (distinct < k) fewer += 1;
  }
  const n = Math.max(lists.length, 1);
  return {
    lists: lists.length,
    meanPhrases: phrases / n,
    meanUniquePhrases: unique / n,
    meanPhraseChars: phraseLengths.length > 0 ? chars / phraseLengths.length : 0,
    meanListChars: chars / n,
    shareWithRepeatedPhrase: repeated / n,
    shareEmpty: empty / n,
    shareFewerThanK: fewer / n,
    phrasesPerList: histogram(perList, 0, 20),
    phraseChars: histogram(phraseLengths, 1, 20),
  };
}
