// What the file readers hand on: a record of named fields with the place it came from, or a bad
// line with the reason. Readers never throw for bad content; `prepare` decides (fail or skip).

export interface SourceRecord {
  readonly file: string;
  /** 1-based line where the record starts. */
  readonly line: number;
  readonly fields: Readonly<Record<string, unknown>>;
}

export interface BadLine {
  readonly file: string;
  readonly line: number;
  /** The field at fault, when one is. */
  readonly field?: string;
  readonly reason: string;
}

export type ReadItem = { readonly ok: true; readonly record: SourceRecord } | { readonly ok: false; readonly bad: BadLine };

export function describeBadLine(b: BadLine): string {
  return `${b.file}:${b.line}: ${b.field ? `field ${b.field}: ` : ''}${b.reason}`;
}
