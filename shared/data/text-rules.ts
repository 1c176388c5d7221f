// The text-level steps of the team's notebooks, each a small pure function.

/** Missing as the notebooks saw it: null/absent, empty after trimming, or pandas' "None". */
export function isMissing(v: string | null | undefined): boolean {
  if (v === null || v === undefined) return true;
  const t = v.trim();
  return t === '' || t === 'None';
}

/** Newlines and tabs become spaces; runs of whitespace collapse to one space; ends trimmed. */
export function normalizeWhitespace(text: string): string {
  return text.replace(/\s+/gu, ' ').trim();
}

const LETTER = /\p{L}/u;

function isHangul(c: number): boolean {
  // Syllables, Jamo, compatibility Jamo.
  return (c >= 0xac00 && c <= 0xd7a3) || (c >= 0x1100 && c <= 0x11ff) || (c >= 0x3130 && c <= 0x318f);
}

/**
 * Share of the text's letters (Unicode category L) that are Hangul; digits, punctuation and spaces
 * do not count either way, so "2024년 GDP 3.1%" is judged by 년 vs G, D, P. 0 when there are no letters.
 * Walks code units with fast paths for ASCII and Hangul (the bulk of the text), regex for the rest.
 */
export function hangulShare(text: string): number {
  let letters = 0;
  let hangul = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      const lower = c | 0x20;
      if (lower >= 0x61 && lower <= 0x7a) letters++;
    } else if (isHangul(c)) {
      letters++;
      hangul++;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      if (LETTER.test(text.slice(i, i + 2))) letters++;
      i++;
    } else if (LETTER.test(text[i]!)) letters++;
  }
  return letters === 0 ? 0 : hangul / letters;
}

// Characters stripped from a phrase's ends: whitespace, separators and sentence punctuation, quotes
// and dashes. Brackets stay ("(주)삼성" keeps its parenthesis) and so do symbols such as + and #.
const PHRASE_EDGE = /^[\s,;:.!?'"‘’“”`·•・、。\-–—_/|]+|[\s,;:.!?'"‘’“”`·•・、。\-–—_/|]+$/gu;

export interface PhraseCleaning {
  readonly clean: boolean;
  readonly maxPhrases: number | null;
}

/** What cleaning removed from one label, for the report. */
export interface PhraseCounts {
  empty: number;
  duplicate: number;
  overCap: number;
}

/**
 * A label as phrases: split a string on `separator` (a list is taken as it is), then, when
 * cleaning, trim and strip the ends, collapse inner whitespace, drop empties and repeats (first
 * kept); finally keep the first `maxPhrases`.
 */
export function labelPhrases(label: readonly string[] | string, separator: string, opts: PhraseCleaning, counts?: PhraseCounts): string[] {
  const pieces = typeof label === 'string' ? splitLabelString(label, separator) : [...label];
  let phrases = pieces;
  if (opts.clean) {
    phrases = [];
    const seen = new Set<string>();
    for (const p of pieces) {
      const c = normalizeWhitespace(p.replace(PHRASE_EDGE, ''));
      if (c === '') {
        if (counts) counts.empty++;
      } else if (seen.has(c)) {
        if (counts) counts.duplicate++;
      } else {
        seen.add(c);
        phrases.push(c);
      }
    }
  }
  if (opts.maxPhrases !== null && phrases.length > opts.maxPhrases) {
    if (counts) counts.overCap += phrases.length - opts.maxPhrases;
    phrases = phrases.slice(0, opts.maxPhrases);
  }
  return phrases;
}

/**
 * Split a label string. A string written as a list — JSON `["a", "b"]` or Python's repr
 * `['a', 'b']`, which is what pandas writes when a list column is saved to CSV — is read as that list.
 */
export function splitLabelString(label: string, separator: string): string[] {
  const t = label.trim();
  if (t.startsWith('[') && t.endsWith(']')) {
    const list = parseQuotedList(t);
    if (list !== undefined) return list;
  }
  return label.split(separator);
}

/** `[ 'a', "b" ]` -> ['a', 'b'] (backslash escapes honoured); undefined if it is not such a list. */
function parseQuotedList(t: string): string[] | undefined {
  const out: string[] = [];
  let i = 1;
  const skipSpace = (): void => {
    while (i < t.length && /\s/u.test(t[i]!)) i++;
  };
  skipSpace();
  if (t[i] === ']') return i === t.length - 1 ? out : undefined;
  for (;;) {
    skipSpace();
    const q = t[i];
    if (q !== '"' && q !== "'") return undefined;
    i++;
    let s = '';
    while (i < t.length && t[i] !== q) {
      if (t[i] === '\\' && i + 1 < t.length) {
        const e = t[i + 1]!;
        s += e === 'n' ? '\n' : e === 't' ? '\t' : e;
        i += 2;
      } else s += t[i++];
    }
    if (i >= t.length) return undefined;
    i++;
    out.push(s);
    skipSpace();
    if (t[i] === ',') {
      i++;
      continue;
    }
    if (t[i] === ']' && i === t.length - 1) return out;
    return undefined;
  }
}
