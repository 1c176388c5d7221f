// How a keyphrase string becomes a list of phrases, exactly as the team's Python did:
// `[p.strip() for p in s.split(';') if p.strip()]`. Lists keep order and duplicates.

export const PHRASE_SEPARATOR = ';';

// Python's str.strip() removes the characters for which str.isspace() is true. That set differs
// from JS String.prototype.trim() (Python adds U+001C-001F and U+0085; JS adds U+FEFF), so the
// team's figures are reproduced with Python's set, not trim().
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'g');

export function pythonStrip(s: string): string {
  return s.replace(PY_STRIP, '');
}

/** Split on ";", strip each piece, drop the empty ones. */
export function splitPhrases(text: string): string[] {
  return cleanPhrases(text.split(PHRASE_SEPARATOR));
}

/** Strip each phrase and drop the empty ones (for phrases given as a JSON array). */
export function cleanPhrases(phrases: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of phrases) {
    const s = pythonStrip(p);
    if (s !== '') out.push(s);
  }
  return out;
}
