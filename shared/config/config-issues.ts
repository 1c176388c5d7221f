import { z } from 'zod';
import { InputFileError } from '../errors.js';
import type { FieldPath } from './config-text.js';
import { suggestKey } from './did-you-mean.js';

// Every problem of a config is collected first and reported once: one InputFileError whose message
// lists each bad field with where it is (file and line, or the --set that gave it). A user fixes
// them all in one pass instead of meeting them one run at a time.

/** Says where a field came from, e.g. "line 12", "ds_config.json line 4" or "--set seed=x". */
export type FieldLocator = (path: FieldPath) => string;

export function pathText(path: FieldPath): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out === '' ? '(top level)' : out;
}

/** A value as a message quotes it. */
export function showValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return `a list ${JSON.stringify(v).slice(0, 60)}`;
  if (v !== null && typeof v === 'object') return 'a mapping';
  return String(v);
}

export function valueAt(root: unknown, path: FieldPath): unknown {
  let v = root;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[p];
  }
  return v;
}

export class ConfigIssues {
  private readonly lines: { readonly text: string; readonly line: number }[] = [];

  get count(): number {
    return this.lines.length;
  }

  add(locate: FieldLocator, path: FieldPath, message: string): void {
    const where = locate(path);
    const field = path.length === 0 && where ? '' : `${pathText(path)}: `;
    // The main file's problems are listed in line order, then --set and other files' ones.
    const line = /^line (\d+)$/u.exec(where);
    this.lines.push({ text: `${where ? `${where}: ` : ''}${field}${message}`, line: line ? Number(line[1]) : Infinity });
  }

  /**
   * Add every issue of a failed zod parse of `input` (which sits at `base` in the config).
   * `schema` is what was parsed: it supplies the known keys for "did you mean".
   */
  addZod(locate: FieldLocator, error: z.ZodError, input: unknown, schema: z.ZodType, base: FieldPath = []): void {
    for (const issue of flattenUnions(error.issues, input)) {
      const path = [...base, ...(issue.path as (string | number)[])];
      if (issue.code === 'unrecognized_keys') {
        const known = knownKeysAt(schema, issue.path as FieldPath);
        for (const key of issue.keys) this.add(locate, [...path, key], unknownKeyMessage(key, known));
        continue;
      }
      this.add(locate, path, describeIssue(issue, valueAt(input, issue.path as FieldPath)));
    }
  }

  /** Throw the one error listing every issue, if there is any. */
  throwIfAny(file: string, what: string): void {
    if (this.lines.length === 0) return;
    const n = this.lines.length;
    const sorted = [...this.lines].sort((a, b) => a.line - b.line);
    throw new InputFileError(file, '', `${what}: ${n} problem${n === 1 ? '' : 's'}:\n${sorted.map((l) => `  - ${l.text}`).join('\n')}`);
  }
}

export function unknownKeyMessage(key: string, known: readonly string[]): string {
  const guess = suggestKey(key, known);
  return `unknown key${guess === undefined ? '' : `; did you mean ${guess}?`}`;
}

// A union that failed: when one branch matched the value's type and failed inside, its issues are
// the real ones (a mapping given for `data` with a bad key is about that key, not "expected a
// string"); when every branch failed at the top, one issue says what would have been accepted.
function flattenUnions(issues: readonly z.core.$ZodIssue[], input: unknown, base: FieldPath = []): z.core.$ZodIssue[] {
  const out: z.core.$ZodIssue[] = [];
  for (const issue of issues) {
    const path = [...base, ...(issue.path as (string | number)[])];
    if (issue.code !== 'invalid_union' || issue.errors.length === 0) {
      out.push({ ...issue, path });
      continue;
    }
    const deeper = issue.errors.find((branch) => branch.length > 0 && branch.every((b) => b.path.length > 0 || b.code === 'unrecognized_keys'));
    if (deeper !== undefined) {
      out.push(...flattenUnions(deeper, input, path));
      continue;
    }
    const accepted = issue.errors.flatMap((branch) => branch.filter((b) => b.path.length === 0).map(expectedText));
    out.push({ code: 'custom', path, message: `expected ${[...new Set(accepted)].join(' or ')} (got ${showValue(valueAt(input, path))})`, input: undefined });
  }
  return out;
}

function expectedText(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_value') return issue.values.map((v) => showValue(v)).join(' or ');
  if (issue.code === 'invalid_type') return article(issue.expected);
  return issue.message;
}

function article(expected: string): string {
  const names: Record<string, string> = { int: 'an integer', number: 'a number', string: 'a string', boolean: 'true or false', object: 'a mapping', array: 'a list' };
  return names[expected] ?? expected;
}

const ZOD_DEFAULT_MESSAGE = /^(Invalid input|Invalid option|Too small|Too big)/u;

function describeIssue(issue: z.core.$ZodIssue, value: unknown): string {
  const got = `(got ${showValue(value)})`;
  if (!ZOD_DEFAULT_MESSAGE.test(issue.message)) return issue.code === 'custom' ? issue.message : `${issue.message} ${got}`;
  switch (issue.code) {
    case 'invalid_type': {
      if (value === undefined) return 'is required';
      const quoted = typeof value === 'string' && value.trim() !== '' && (!Number.isNaN(Number(value)) || value === 'true' || value === 'false');
      return `expected ${article(issue.expected)} ${got}${quoted ? '; write it without quotes' : ''}`;
    }
    case 'too_small':
      if (issue.origin === 'string' && Number(issue.minimum) === 1) return 'must not be empty';
      return `must be ${issue.inclusive ? '>=' : '>'} ${issue.minimum} ${got}`;
    case 'too_big':
      return `must be ${issue.inclusive ? '<=' : '<'} ${issue.maximum} ${got}`;
    case 'invalid_value':
      return `expected ${issue.values.length === 1 ? '' : 'one of '}${issue.values.map((v) => showValue(v)).join(', ')} ${got}`;
    default:
      return `${issue.message} ${got}`;
  }
}

/** Keys of the object schema at `path` inside `schema` (through optional/default/nullable/union wrappers). */
export function knownKeysAt(schema: z.ZodType, path: FieldPath): string[] {
  let s: z.ZodType | undefined = schema;
  for (const p of path) {
    const obj = objectOf(s);
    s = obj?.shape[String(p)] as z.ZodType | undefined;
    if (s === undefined) return [];
  }
  return Object.keys(objectOf(s)?.shape ?? {});
}

function objectOf(s: z.ZodType | undefined): z.ZodObject | undefined {
  for (let i = 0; s !== undefined && i < 8; i++) {
    if (s instanceof z.ZodObject) return s;
    if (s instanceof z.ZodOptional || s instanceof z.ZodNullable || s instanceof z.ZodDefault || s instanceof z.ZodPrefault) s = s.unwrap() as z.ZodType;
    else if (s instanceof z.ZodUnion) s = (s.options as z.ZodType[]).find((o) => objectOf(o) !== undefined);
    else return undefined;
  }
  return undefined;
}
