import { InputFileError } from '../errors.js';
import type { ReadItem } from './source-record.js';
import { byteLines, decodeUtf8Line } from './utf8-lines.js';

// An RFC 4180 CSV reader: comma-separated, fields optionally in double quotes, "" for a quote inside
// quotes, quoted fields may span lines, CRLF or LF (or lone CR) ends a record. The first record is
// the header and names the fields. Stricter than the RFC's "should": a quote inside an unquoted
// field, or text after a closing quote, is a bad line rather than a guess.

/** One parsed record (or the reason it is malformed) and the line it starts on. */
export type CsvRecord = { readonly line: number; readonly values: string[] } | { readonly line: number; readonly error: string };

const enum State {
  FieldStart,
  Unquoted,
  Quoted,
  /** Just read a quote inside a quoted field: either an escaped quote or the field's end. */
  QuoteInQuoted,
  /** The record is bad; drop characters up to the end of the physical line. */
  SkipToLineEnd,
}

/** Incremental parser: feed text chunks, collect complete records; chunk boundaries can fall anywhere. */
export class CsvParser {
  private state = State.FieldStart;
  private field = '';
  private values: string[] = [];
  private line = 1;
  private recordLine = 1;
  private lastWasCr = false;
  private error = '';
  private started = false;

  push(chunk: string, out: CsvRecord[]): void {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      // A CR LF pair is one line break: the LF after a CR neither counts a line nor ends a record.
      if (c === '\n' && this.lastWasCr) {
        this.lastWasCr = false;
        if (this.state === State.Quoted) this.field += c;
        continue;
      }
      this.lastWasCr = c === '\r';
      const isBreak = c === '\n' || c === '\r';
      if (!this.started) {
        this.started = true;
        this.recordLine = this.line;
      }
      switch (this.state) {
        case State.FieldStart:
          if (c === '"') this.state = State.Quoted;
          else if (c === ',') this.values.push('');
          else if (isBreak) this.endRecord(out);
          else {
            this.field = c;
            this.state = State.Unquoted;
          }
          break;
        case State.Unquoted:
          if (c === ',') this.endField(State.FieldStart);
          else if (isBreak) this.endRecord(out);
          else if (c === '"') this.fail(`a quote inside an unquoted field (field ${this.values.length + 1}); quote the whole field and write "" for a quote`);
          else this.field += c;
          break;
        case State.Quoted:
          if (c === '"') this.state = State.QuoteInQuoted;
          else this.field += c;
          break;
        case State.QuoteInQuoted:
          if (c === '"') {
            this.field += '"';
            this.state = State.Quoted;
          } else if (c === ',') this.endField(State.FieldStart);
          else if (isBreak) this.endRecord(out);
          else this.fail(`text after the closing quote of field ${this.values.length + 1}`);
          break;
        case State.SkipToLineEnd:
          if (isBreak) this.endRecord(out);
          break;
      }
      if (isBreak) this.line++;
    }
  }

  /** Call once after the last chunk. */
  end(out: CsvRecord[]): void {
    if (this.state === State.Quoted) this.fail('a quoted field is not closed before the end of the file');
    if (this.started) this.endRecord(out);
  }

  private fail(reason: string): void {
    this.error = reason;
    this.state = State.SkipToLineEnd;
  }

  private endField(next: State): void {
    this.values.push(this.field);
    this.field = '';
    this.state = next;
  }

  /** Mark the record being read (or the next one, between records) bad, unless it already is. */
  spoil(reason: string): void {
    if (!this.error) this.error = reason;
  }

  private endRecord(out: CsvRecord[]): void {
    if (this.error) out.push({ line: this.recordLine, error: this.error });
    else {
      const wasEmptyLine = this.values.length === 0 && this.state === State.FieldStart;
      this.values.push(this.field);
      if (!wasEmptyLine) out.push({ line: this.recordLine, values: this.values });
    }
    this.values = [];
    this.field = '';
    this.error = '';
    this.state = State.FieldStart;
    this.started = false;
  }
}

/** Parse a whole string (tests, small files). */
export function parseCsv(text: string): CsvRecord[] {
  const p = new CsvParser();
  const out: CsvRecord[] = [];
  p.push(text, out);
  p.end(out);
  return out;
}

/**
 * Records of a CSV file as objects keyed by the header's names. A bad header (malformed, empty or
 * repeated names) makes the whole file unusable and throws; a bad record is a bad line.
 */
export async function* readCsv(file: string): AsyncGenerator<ReadItem> {
  const parser = new CsvParser();
  let header: string[] | undefined;
  let first = true;
  const pending: CsvRecord[] = [];
  const drain = function* (): Generator<ReadItem> {
    for (const r of pending) {
      if (header === undefined) {
        if ('error' in r) throw new InputFileError(file, String(r.line), `bad CSV header: ${r.error}`);
        header = r.values.map((v) => v.trim());
        const seen = new Set<string>();
        for (const [i, name] of header.entries()) {
          if (name === '') throw new InputFileError(file, String(r.line), `CSV header: column ${i + 1} has no name`);
          if (seen.has(name)) throw new InputFileError(file, String(r.line), `CSV header: column "${name}" appears twice`);
          seen.add(name);
        }
        continue;
      }
      if ('error' in r) {
        yield { ok: false, bad: { file, line: r.line, reason: r.error } };
      } else if (r.values.length !== header.length) {
        yield { ok: false, bad: { file, line: r.line, reason: `expected ${header.length} fields as in the header, found ${r.values.length}` } };
      } else {
        const fields: Record<string, unknown> = {};
        for (let i = 0; i < header.length; i++) fields[header[i]!] = r.values[i];
        yield { ok: true, record: { file, line: r.line, fields } };
      }
    }
    pending.length = 0;
  };
  for await (const { line, bytes } of byteLines(file)) {
    const decoded = decodeUtf8Line(bytes);
    // A line that is not UTF-8 spoils the record it belongs to (records may span lines); its text,
    // decoded with U+FFFD, still goes through the parser so the record's end is found.
    if (!decoded.ok) parser.spoil(`line ${line}: ${decoded.reason}`);
    let text = decoded.ok ? decoded.text : bytes.toString('utf8');
    if (first) {
      first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    parser.push(text, pending);
    yield* drain();
  }
  parser.end(pending);
  yield* drain();
}
