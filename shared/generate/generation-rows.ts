import { RowCleaner } from '../data/clean-rows.js';
import type { DataRules } from '../data/data-rules.js';
import { readSource } from '../data/read-source.js';
import { toSourceRow, type SourceRow } from '../data/source-row.js';
import { isMissing } from '../data/text-rules.js';
import { InputFileError } from '../errors.js';

// Articles to generate keyphrases for, read in the team's formats (the readers and field rules of
// `data prepare`) and turned into model input text by the very code that builds training inputs
// (RowCleaner.clean: whitespace rule, title + " " + body, input prefix), so prefix and text match
// what the model was trained on. Rows are never dropped here: generation needs no label and keeps
// every article, so the row filters (missing, duplicate titles, non-Korean) are switched off, and a
// bad line is an error naming the file, line and field.

export interface GenerationRow {
  readonly file: string;
  readonly line: number;
  readonly id: string | null;
  /** The model input text, prefix included (not yet tokenised). */
  readonly inputText: string;
  /** The label as training would build it ("a; b", cleaned), or null when the row has none. */
  readonly label: string | null;
}

const LABEL_FIELDS = ['keyphrases', 'target_text'];
/** Stands in for a missing label so RowCleaner builds the input text; never written anywhere. */
const PLACEHOLDER_LABEL = ['x'];

export async function readGenerationRows(file: string, rules: DataRules): Promise<GenerationRow[]> {
  const cleaner = new RowCleaner({ ...rules, drop_missing: false, drop_duplicate_titles: false, korean_only: false });
  const rows: GenerationRow[] = [];
  for await (const item of readSource(file)) {
    if (!item.ok) throw badLine(item.bad.file, item.bad.line, item.bad.field, item.bad.reason);
    const { fields, line } = item.record;
    // A label is optional for generation; toSourceRow requires the field, so an absent one is null.
    const hasLabel = LABEL_FIELDS.some((f) => Object.hasOwn(fields, f));
    const parsed = toSourceRow(hasLabel ? item.record : { ...item.record, fields: { ...fields, keyphrases: null } });
    if (!parsed.ok) throw badLine(parsed.bad.file, parsed.bad.line, parsed.bad.field, parsed.bad.reason);
    const row = parsed.row;
    if (isMissing(row.text)) throw badLine(file, line, textFieldOf(row, fields), 'no text to generate keyphrases from (missing, empty or "None")');
    const withLabel = cleaner.clean(row);
    if (withLabel.ok) {
      rows.push({ file, line, id: row.id, inputText: withLabel.example.inputText, label: withLabel.example.targetText });
      continue;
    }
    const unlabelled = cleaner.clean({ ...row, label: PLACEHOLDER_LABEL, labelField: 'keyphrases' });
    if (!unlabelled.ok) throw new InputFileError(file, String(line), `the row could not be turned into model input (${unlabelled.rule})`);
    rows.push({ file, line, id: row.id, inputText: unlabelled.example.inputText, label: null });
  }
  if (rows.length === 0) throw new InputFileError(file, '', 'the file holds no rows');
  return rows;
}

function textFieldOf(row: SourceRow, fields: Readonly<Record<string, unknown>>): string {
  if (row.shape !== 'title_body') return row.shape;
  return Object.hasOwn(fields, 'body') ? 'body' : 'content';
}

function badLine(file: string, line: number, field: string | undefined, reason: string): InputFileError {
  return new InputFileError(file, String(line), `${field ? `field ${field}: ` : ''}${reason}`);
}
