// From a generated string to a keyphrase list, each step switchable so its effect can be measured
// (the team's greedy outputs repeated a phrase in 34% of cases, so de-duplication matters):
//   split on the separator -> trim -> drop empties -> drop URLs -> de-duplicate -> keep the first K.

export interface PostprocessOptions {
  /** Split on `separator`; off: the whole output is one phrase. */
  readonly split: boolean;
  readonly separator: string;
  /** Strip whitespace at both ends of each phrase. */
  readonly trim: boolean;
  /** Drop phrases that are empty or only whitespace. */
  readonly dropEmpty: boolean;
  /** Drop phrases holding a URL (scheme://... or www....): news boilerplate, never a keyphrase. */
  readonly dropUrls: boolean;
  /** Drop exact repeats (after the steps above), the first kept. */
  readonly dedupe: boolean;
  /** Keep the first K phrases; null keeps all. */
  readonly topK: number | null;
}

export const DEFAULT_POSTPROCESS: PostprocessOptions = Object.freeze({
  split: true,
  separator: ';',
  trim: true,
  dropEmpty: true,
  dropUrls: true,
  dedupe: true,
  topK: null,
});

/** Joins phrases in the `prediction` field, as the team's targets are joined. */
export const PREDICTION_SEPARATOR = '; ';

const URL = /(?:\b[a-z][a-z0-9+.-]*:\/\/|\bwww\.)\S/iu;

export function postprocessKeyphrases(text: string, o: PostprocessOptions = DEFAULT_POSTPROCESS): string[] {
  let phrases = o.split ? text.split(o.separator) : [text];
  if (o.trim) phrases = phrases.map((p) => p.trim());
  if (o.dropEmpty) phrases = phrases.filter((p) => p.trim() !== '');
  if (o.dropUrls) phrases = phrases.filter((p) => !URL.test(p));
  if (o.dedupe) phrases = [...new Set(phrases)];
  if (o.topK !== null) phrases = phrases.slice(0, o.topK);
  return phrases;
}
