import type { DataRules } from './data-rules.js';
import type { SourceRow } from './source-row.js';
import { hangulShare, isMissing, labelPhrases, normalizeWhitespace, type PhraseCounts } from './text-rules.js';

// The notebooks' row rules in their order; each drop is counted under the rule's name. The
// token-length rules come last, after tokenisation (in prepare.ts), and are counted here too.
export const DROP_RULES = [
  'missing_text',
  'missing_keyphrases',
  'duplicate_title',
  'not_korean',
  'empty_keyphrases',
  'input_too_short',
  'input_too_long',
  'target_too_long',
  'sequence_too_long',
] as const;
export type DropRule = (typeof DROP_RULES)[number];

/** A row turned into a training example's texts, still untokenised. */
export interface TextExample {
  readonly id: string | null;
  readonly file: string;
  readonly line: number;
  readonly inputText: string;
  readonly targetText: string;
}

export type CleanResult = { readonly ok: true; readonly example: TextExample } | { readonly ok: false; readonly rule: DropRule };

export class RowCleaner {
  readonly dropped: Record<DropRule, number> = Object.fromEntries(DROP_RULES.map((r) => [r, 0])) as Record<DropRule, number>;
  /** Phrases that keyphrase cleaning removed, over all kept and dropped rows. */
  readonly phrases: PhraseCounts = { empty: 0, duplicate: 0, overCap: 0 };
  private readonly seenTitles = new Set<string>();

  constructor(private readonly rules: DataRules) {}

  drop(rule: DropRule): CleanResult {
    this.dropped[rule]++;
    return { ok: false, rule };
  }

  clean(row: SourceRow): CleanResult {
    const r = this.rules;
    const hasTitle = row.shape === 'title_body';
    // missing or "None" title / body
    if (r.drop_missing && (isMissing(row.text) || (hasTitle && isMissing(row.title)))) return this.drop('missing_text');
    const label = row.label;
    const labelMissing = label === null || (typeof label === 'string' ? isMissing(label) : label.length === 0);
    if (r.drop_missing && labelMissing) return this.drop('missing_keyphrases');

    // duplicate titles, first kept. Rows without a title field key on their whole text.
    if (r.drop_duplicate_titles) {
      const key = ((hasTitle ? row.title : row.text) ?? '').trim();
      if (this.seenTitles.has(key)) return this.drop('duplicate_title');
      this.seenTitles.add(key);
    }

    const tidy = (s: string | null): string => (r.normalize_whitespace ? normalizeWhitespace(s ?? '') : (s ?? ''));
    const body = tidy(row.text);
    const text = hasTitle ? `${tidy(row.title)} ${body}` : body;

    if (r.korean_only && hangulShare(text) < r.min_hangul_share) return this.drop('not_korean');

    // A ready-made target_text was joined with the target separator ("; "): split on its non-space part.
    const separator = row.labelField === 'target_text' ? r.target_separator.trim() || r.target_separator : r.keyphrase_separator;
    const cleaning = { clean: r.clean_keyphrases, maxPhrases: r.max_keyphrases };
    const phrases = label === null ? [] : labelPhrases(label, separator, cleaning, this.phrases);
    if (phrases.length === 0) return this.drop('empty_keyphrases');

    const inputText = row.shape === 'input_text' && text.startsWith(r.input_prefix) ? text : r.input_prefix + text;
    const targetText = phrases.join(r.target_separator);
    return { ok: true, example: { id: row.id, file: row.file, line: row.line, inputText, targetText } };
  }
}
