import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { InputFileError } from '../errors.js';
import { decodeUtf8Line } from '../data/utf8-lines.js';

// A config file read as a value plus a way back from a field path to its line, so an error can say
// "run.yaml line 12: learning_rate: ...". Both YAML and JSON go through the `yaml` package's
// document model (JSON is YAML 1.2 flow syntax), which keeps every node's source range; JSON files
// are additionally held to JSON.parse, so a .json file cannot lean on YAML-only syntax.

export type FieldPath = readonly (string | number)[];

export interface ConfigText {
  /** The file as given (used in messages). */
  readonly file: string;
  readonly value: unknown;
  /**
   * 1-based line of the field at `path`: of its key when it is a mapping entry. When the path goes
   * deeper than the file does (a missing field), the line of the deepest part that exists.
   */
  lineOf(path: FieldPath): number | undefined;
}

export const CONFIG_EXTENSIONS = ['.yaml', '.yml', '.json'] as const;

/** Read a .yaml/.yml/.json file; syntax errors (with line) and unreadable files are InputFileErrors. */
export function readConfigText(file: string): ConfigText {
  const ext = extname(file).toLowerCase();
  if (!(CONFIG_EXTENSIONS as readonly string[]).includes(ext)) {
    throw new InputFileError(file, '', `expected a ${CONFIG_EXTENSIONS.join(', ')} file (the extension picks the parser)`);
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new InputFileError(file, '', `cannot read the file (${(err as Error).message})`, { cause: err });
  }
  // Strict UTF-8: a bad byte would otherwise become U+FFFD inside a path or a name, silently.
  const decoded = decodeUtf8Line(bytes);
  if (!decoded.ok) {
    const at = Buffer.byteLength(bytes.toString('utf8').slice(0, Math.max(0, bytes.toString('utf8').indexOf('\uFFFD'))));
    const line = bytes.subarray(0, at).toString('latin1').split('\n').length;
    throw new InputFileError(file, `${line}`, 'not valid UTF-8; save the file as UTF-8');
  }
  const text = decoded.text;
  return parseConfigText(file, text, ext === '.json' ? 'json' : 'yaml');
}

export function parseConfigText(file: string, text: string, syntax: 'yaml' | 'json'): ConfigText {
  const lines = new LineCounter();
  // uniqueKeys: a repeated key is an error (JSON.parse would keep the last one silently).
  // prettyErrors gives each error its line (and appends a code frame, which is cut off below).
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: true });
  const first = doc.errors[0];
  if (first !== undefined) {
    const line = first.linePos?.[0].line;
    const message = first.message.split(/ at line \d+, column \d+/u)[0];
    throw new InputFileError(file, line === undefined ? '' : `${line}`, `not valid ${syntax === 'json' ? 'JSON' : 'YAML'}: ${message}`);
  }
  if (syntax === 'json') {
    try {
      JSON.parse(text);
    } catch (err) {
      const at = /position (\d+)/u.exec((err as Error).message);
      const line = at ? lines.linePos(Number(at[1])).line : undefined;
      throw new InputFileError(file, line === undefined ? '' : `${line}`, `not valid JSON: ${(err as Error).message}`, { cause: err });
    }
  }
  let value: unknown;
  try {
    value = doc.toJS();
  } catch (err) {
    // e.g. an alias to an anchor that is not set (`*a`): yaml throws a ReferenceError here.
    throw new InputFileError(file, '', `not valid ${syntax === 'json' ? 'JSON' : 'YAML'}: ${(err as Error).message}`, { cause: err });
  }
  return { file, value, lineOf: (path) => lineOfPath(doc, lines, path) };
}

function lineOfPath(doc: Document, lines: LineCounter, path: FieldPath): number | undefined {
  let node: unknown = doc.contents;
  let offset = startOf(node);
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(segment));
      if (pair === undefined) break;
      // Point at the key: "line 7: learning_rate" reads better than the value's line of a block.
      offset = startOf(pair.key) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number' && node.items[segment] !== undefined) {
      node = node.items[segment];
      offset = startOf(node) ?? offset;
    } else {
      break;
    }
  }
  return offset === undefined ? undefined : lines.linePos(offset).line;
}

function startOf(node: unknown): number | undefined {
  const range = (node as Node | null | undefined)?.range;
  return range ? range[0] : undefined;
}
