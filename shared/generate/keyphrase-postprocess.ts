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

// A decoder-only model's output ([Note: cache layout]: it continues the prompt input_prefix +
// article + target_prefix): what it generated after the prompt, up to eos, and before it starts
// another example (a prefix again); the phrases are then post-processed as T5's output is.

export interface CausalCompletionOptions {
  /** The prompt's text: stripped when the output starts with it (a whole decoded sequence). */
  readonly prompt?: string;
  /** The training prefixes (input_prefix, target_prefix): the output ends where either starts again (compared trimmed). */
  readonly prefixes: readonly string[];
  /** The eos token's text, for outputs decoded with special tokens kept: the output ends there too. */
  readonly eosText?: string;
}

/** Generated ids up to the first eos (not included). */
export function idsBeforeEos(ids: readonly number[], eosId: number): number[] {
  const at = ids.indexOf(eosId);
  return at < 0 ? [...ids] : ids.slice(0, at);
}

/** The completion's text: the prompt stripped, cut at eos or the first prefix occurrence. */
export function causalCompletionText(text: string, o: CausalCompletionOptions): string {
  let out = o.prompt !== undefined && o.prompt !== '' && text.startsWith(o.prompt) ? text.slice(o.prompt.length) : text;
  const stops = [...o.prefixes.map((p) => p.trim()), ...(o.eosText ? [o.eosText] : [])].filter((s) => s !== '');
  for (const stop of stops) {
    const at = out.indexOf(stop);
    if (at >= 0) out = out.slice(0, at);
  }
  return out;
}

/** causalCompletionText, then postprocessKeyphrases (split on ';', URLs dropped, ...). */
export function causalKeyphrases(text: string, o: CausalCompletionOptions, post: PostprocessOptions = DEFAULT_POSTPROCESS): string[] {
  return postprocessKeyphrases(causalCompletionText(text, o), post);
}
