// The Korean ROUGE tokenizer. The common ROUGE tokenizer (rouge_score's) lower-cases, replaces
// everything outside [a-z0-9] by spaces and so scores Korean text as empty. This one keeps Hangul.
//
// After NFKC and lower-casing, a token is a maximal run of one kind of character: Hangul
// (syllables and jamo), Latin letters, decimal digits, Han characters, or other letters.
// Punctuation and whitespace separate tokens and are dropped. Splitting at script changes makes
// "2023년" -> ["2023", "년"] and "UCL득점왕" -> ["ucl", "득점왕"], which is as far as one can get
// towards morphemes without a dictionary.
//
// This is NOT Komoran. Komoran (the team's tokenizer) is a dictionary-based morphological
// analyser: it splits compounds and strips particles and endings ("보드게임을" -> 보드/게임/을),
// so a partly right compound earns partial credit there and none here. Particles are not
// stripped here: a suffix list without a dictionary also cuts nouns that merely end in the same
// syllable (국가 -> 국, 회의 -> 회), and keyphrases are noun phrases that rarely carry particles.
//
// `keepSeparators` also emits ";" as a token. The team's Komoran pipeline appears to have scored
// the ";" separators as tokens (with them our figures land near theirs); it is an option only so
// the two can be compared, not the default, because matching separators rewards phrase count.

const TOKEN = /\p{Script=Hangul}+|\p{Script=Latin}+|\p{Nd}+|\p{Script=Han}+|[\p{L}\p{M}]+/gu;
const TOKEN_OR_SEPARATOR = /\p{Script=Hangul}+|\p{Script=Latin}+|\p{Nd}+|\p{Script=Han}+|[\p{L}\p{M}]+|;/gu;

export interface RougeTokenizerOptions {
  readonly keepSeparators?: boolean;
}

export function tokenizeKorean(text: string, options: RougeTokenizerOptions = {}): string[] {
  const pattern = options.keepSeparators ? TOKEN_OR_SEPARATOR : TOKEN;
  return text.normalize('NFKC').toLowerCase().match(pattern) ?? [];
}

export const ROUGE_TOKENIZER_DESCRIPTION =
  'NFKC, lower-case, maximal runs of Hangul | Latin | digits | Han | other letters; punctuation dropped; no particle stripping; not Komoran';
