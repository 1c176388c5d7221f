import type { BadLine, SourceRecord } from './source-record.js';

// Which fields of a record hold the text and the label. The team's files come in three shapes:
//   title + body (or title + content)   korean-news, the shipped sample set, V3/V4 exports
//   title_content                       V1/V2 (title and body already joined)
//   input_text (+ target_text)          a set already built for training
// and the label is `keyphrases` (a list, or one string split by the rules' separator) or a
// ready-made `target_text`.

export type TextShape = 'title_body' | 'title_content' | 'input_text';

export interface SourceRow {
  readonly file: string;
  readonly line: number;
  /** The record's `id` as a string, or null when it has none. */
  readonly id: string | null;
  readonly shape: TextShape;
  /** The title (title_body shape only; null otherwise or when missing). */
  readonly title: string | null;
  /** body / content, title_content or input_text, by shape; null when missing. */
  readonly text: string | null;
  /** A list of phrases, one string to split, or null when missing. */
  readonly label: readonly string[] | string | null;
  /** Where the label came from: a target_text string is split on the target separator, not the keyphrase one. */
  readonly labelField: 'keyphrases' | 'target_text';
}

export const EXPECTED_TEXT_FIELDS = 'title + body (or title + content), title_content, or input_text';
export const EXPECTED_LABEL_FIELDS = 'keyphrases or target_text';

type Result = { readonly ok: true; readonly row: SourceRow } | { readonly ok: false; readonly bad: BadLine };

function has(fields: Readonly<Record<string, unknown>>, name: string): boolean {
  return Object.hasOwn(fields, name);
}

/** The record's fields as a row, or a bad line naming the field at fault or the fields expected and found. */
export function toSourceRow(record: SourceRecord): Result {
  const { file, line, fields } = record;
  const bad = (reason: string, field?: string): Result => ({ ok: false, bad: field ? { file, line, field, reason } : { file, line, reason } });
  const found = (): string => Object.keys(fields).join(', ') || '(none)';

  let shape: TextShape;
  let textField: string;
  if (has(fields, 'input_text')) [shape, textField] = ['input_text', 'input_text'];
  else if (has(fields, 'title_content')) [shape, textField] = ['title_content', 'title_content'];
  else if (has(fields, 'title') && (has(fields, 'body') || has(fields, 'content'))) {
    [shape, textField] = ['title_body', has(fields, 'body') ? 'body' : 'content'];
  } else return bad(`no text fields: expected ${EXPECTED_TEXT_FIELDS}; found ${found()}`);

  const labelField = has(fields, 'keyphrases') ? 'keyphrases' : has(fields, 'target_text') ? 'target_text' : undefined;
  if (labelField === undefined) return bad(`no label field: expected ${EXPECTED_LABEL_FIELDS}; found ${found()}`);

  const stringOrNull = (name: string): string | null | Result => {
    const v = fields[name];
    if (v === null || v === undefined) return null;
    if (typeof v !== 'string') return bad(`expected a string or null, got ${describe(v)}`, name);
    return v;
  };
  const text = stringOrNull(textField);
  if (isResult(text)) return text;
  const title = shape === 'title_body' ? stringOrNull('title') : null;
  if (isResult(title)) return title;

  let label: readonly string[] | string | null;
  const v = fields[labelField];
  if (v === null || v === undefined) label = null;
  else if (typeof v === 'string') label = v;
  else if (Array.isArray(v) && labelField === 'keyphrases') {
    const i = v.findIndex((p) => typeof p !== 'string');
    if (i >= 0) return bad(`item ${i} of the list is ${describe(v[i])}, expected a string`, labelField);
    label = v as string[];
  } else return bad(`expected ${labelField === 'keyphrases' ? 'a list of strings or one string' : 'a string'}, got ${describe(v)}`, labelField);

  const rawId = fields.id;
  const id = typeof rawId === 'string' || typeof rawId === 'number' ? String(rawId) : null;
  return { ok: true, row: { file, line, id, shape, title, text, label, labelField } };
}

function isResult(v: unknown): v is Result {
  return typeof v === 'object' && v !== null && 'ok' in v;
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (v === null) return 'null';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}
