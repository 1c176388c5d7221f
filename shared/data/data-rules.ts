import { z } from 'zod';
import { InputFileError } from '../errors.js';

// The cleaning and filtering rules of `kp-coord data prepare`, with the team's defaults (the V4 set:
// their notebooks' steps, in the order `clean-rows.ts` applies them). snake_case like HF configs, so
// a rules file reads like the notebooks' constants. Every rule can be switched off; every row a
// rule drops is counted under the rule's name in report.json.

const tokenLimit = z.number().int().nonnegative().nullable();

export const DataRules = z
  .object({
    /** Drop rows whose title or body (or title_content / input_text) is missing, empty or "None". */
    drop_missing: z.boolean().default(true),
    /** Drop rows whose title was seen before (keep the first); rows without a title key on their whole text. */
    drop_duplicate_titles: z.boolean().default(true),
    /** Replace newlines and tabs with spaces and collapse runs of whitespace. */
    normalize_whitespace: z.boolean().default(true),
    /** Keep only rows whose letters are at least `min_hangul_share` Hangul. */
    korean_only: z.boolean().default(true),
    min_hangul_share: z.number().min(0).max(1).default(0.5),
    /** How a keyphrase string splits into phrases (lists need none). V2/V1 files use ",". */
    keyphrase_separator: z.string().min(1).default(';'),
    /** Trim phrases, strip separators/punctuation at their ends, drop empties and repeats. */
    clean_keyphrases: z.boolean().default(true),
    /** Keep the first N phrases of a label (null: all). */
    max_keyphrases: z.number().int().positive().nullable().default(10),
    /** Put in front of every input (a row's ready-made input_text keeps its own if it has it). */
    input_prefix: z.string().default('generate keyphrases: '),
    /** Joins a label's phrases into the target text. */
    target_separator: z.string().min(1).default('; '),
    /**
     * Causal layout only: between the article and the keyphrases (the team's decoder-only recipe,
     * `generate keyphrases: <article> keyphrases generated: <k1; k2>`<eos>). The prompt is cut
     * after its last non-space character, so its trailing spaces start the completion.
     */
    target_prefix: z.string().min(1).default(' keyphrases generated: '),
    /**
     * Token-length filters, counted with the eos the pipeline appends (HF's T5 tokenizer adds it
     * too, so the team's `len(tokenizer(text).input_ids)` counted it). Keep min <= length < max;
     * null switches a limit off.
     */
    min_input_tokens: tokenLimit.default(500),
    max_input_tokens: tokenLimit.default(1000),
    max_target_tokens: tokenLimit.default(64),
    /**
     * Causal layout only: the whole sequence (prompt + keyphrases + eos) must be shorter than this,
     * like HF's max_seq_length but dropping the row instead of truncating it. There the input
     * limits count the prompt (input_prefix + article + target_prefix) and max_target_tokens the
     * keyphrases + eos. A seq2seq cache refuses it.
     */
    max_sequence_tokens: tokenLimit.default(null),
    /** Without an eval file: this share of the kept rows, drawn with `split_seed`, becomes the eval split. */
    eval_ratio: z.number().min(0).lt(1).default(0.2),
    split_seed: z.number().int().nonnegative().default(100),
  })
  .strict();

export type DataRules = z.infer<typeof DataRules>;
export type DataRulesInput = z.input<typeof DataRules>;

/**
 * Named rule sets. `v4` is the team's V4 recipe. `embedded-sample` suits the shipped sample set
 * (shared/datasets/ko-news-sample.jsonl) with the byte tokenizer: its articles are short and a
 * Hangul syllable is 3 byte tokens, so V4's windows would drop every row (its inputs are 750-940
 * bytes, a 10-phrase label 100-190). 1024 and 256 keep them all and bound the model's shapes.
 */
export const RULE_PRESETS: Readonly<Record<string, DataRulesInput>> = Object.freeze({
  v4: {},
  'embedded-sample': {
    min_input_tokens: null,
    max_input_tokens: 1024,
    max_target_tokens: 256,
  },
});

export function rulePresetNames(): string[] {
  return Object.keys(RULE_PRESETS);
}

/**
 * Rules = preset, then each override in turn (a rules file, then flags), validated once. `source`
 * names where the overrides came from, for the error, which lists every bad field.
 */
export function resolveRules(preset: string, overrides: readonly Record<string, unknown>[] = [], source = 'rules'): DataRules {
  const base = RULE_PRESETS[preset];
  if (base === undefined) throw new InputFileError(source, '', `unknown rules preset "${preset}"; known: ${rulePresetNames().join(', ')}`);
  const merged: Record<string, unknown> = { ...base };
  for (const o of overrides) for (const [k, v] of Object.entries(o)) if (v !== undefined) merged[k] = v;
  const r = DataRules.safeParse(merged);
  if (!r.success) {
    const fields = r.error.issues.map((i) => `${i.path.join('.') || (i.code === 'unrecognized_keys' ? i.keys.join(', ') : '(root)')}: ${i.message}`);
    throw new InputFileError(source, '', `bad rules: ${fields.join('; ')}`);
  }
  return Object.freeze(r.data);
}
