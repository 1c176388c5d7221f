import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { InputFileError } from '../errors.js';
import { cleanPhrases, splitPhrases } from './keyphrase-list.js';

// Reading what `kp-coord evaluate` scores. Rules:
// - --pairs: JSONL, one {"label": "a; b", "prediction": "c; d"} per line.
// - --gold / --pred: a file ending in .jsonl is JSONL, anything else plain text with one
//   document per line, its phrases joined by ";". JSONL gold rows carry `label` or `keyphrases`,
//   prediction rows `prediction` or `keyphrases`; each a ";"-joined string or an array of strings.
// - --source: JSONL aligned with the documents; the text is the first present of
//   `title_content`, `source`, or `title` + " " + `body` (the training input's order).
// Row i of every file is document i, so the files must have equally many rows. A final newline
// is allowed; any other blank line in JSONL is an error. Gold lists must not be empty (there is
// nothing to score against); an empty prediction is a legitimate output and scores 0.

export interface EvalDocument {
  readonly gold: string[];
  readonly prediction: string[];
  /** The texts ROUGE compares: the original strings, or array phrases joined by "; ". */
  readonly goldText: string;
  readonly predictionText: string;
  readonly source: string | null;
}

export type InputFiles =
  | { readonly kind: 'pairs'; readonly pairs: string; readonly source?: string }
  | { readonly kind: 'gold-prediction'; readonly gold: string; readonly prediction: string; readonly source?: string };

export interface LoadedInputs {
  readonly documents: EvalDocument[];
  readonly files: InputFiles;
  /** sha256 of the pairs file, to recognise pairs whose published results we know. */
  readonly pairsSha256: string | null;
}

interface Line {
  readonly number: number;
  readonly text: string;
}

function readLines(path: string): { lines: Line[]; sha256: string } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (cause) {
    throw new InputFileError(path, '', `cannot read: ${(cause as Error).message}`, { cause });
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const texts = bytes.toString('utf8').replace(/^\uFEFF/, '').split(/\r?\n/);
  if (texts.length > 0 && texts[texts.length - 1] === '') texts.pop();
  return { lines: texts.map((text, i) => ({ number: i + 1, text })), sha256 };
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => (issue.path.length > 0 ? `field "${issue.path.join('.')}": ${issue.message}` : issue.message))
    .join('; ');
}

function parseJsonLine<T>(path: string, line: Line, schema: z.ZodType<T>): T {
  if (line.text.trim() === '') throw new InputFileError(path, String(line.number), 'blank line; every line must be one JSON object');
  let json: unknown;
  try {
    json = JSON.parse(line.text);
  } catch (cause) {
    throw new InputFileError(path, String(line.number), `not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new InputFileError(path, String(line.number), describeIssues(parsed.error));
  return parsed.data;
}

const PhraseField = z.union([z.string(), z.array(z.string())]);
type PhraseValue = z.infer<typeof PhraseField>;

const PairRow = z.object({ label: z.string(), prediction: z.string() });
const GoldRow = z.object({ label: PhraseField.optional(), keyphrases: PhraseField.optional() });
const PredictionRow = z.object({ prediction: PhraseField.optional(), keyphrases: PhraseField.optional() });
const SourceRow = z.object({
  title_content: z.string().optional(),
  source: z.string().optional(),
  title: z.string().optional(),
  body: z.string().optional(),
});

interface PhraseList {
  readonly phrases: string[];
  readonly text: string;
}

function toPhraseList(value: PhraseValue): PhraseList {
  if (typeof value === 'string') return { phrases: splitPhrases(value), text: value };
  const phrases = cleanPhrases(value);
  return { phrases, text: phrases.join('; ') };
}

/** The one phrase field a JSONL row must carry, of the two it may use. */
function pickField(path: string, line: Line, row: Record<string, PhraseValue | undefined>, names: [string, string]): PhraseValue {
  const present = names.filter((n) => row[n] !== undefined);
  if (present.length !== 1) {
    const problem = present.length === 0 ? 'missing' : 'both given; use one';
    throw new InputFileError(path, String(line.number), `field "${names[0]}" or "${names[1]}": ${problem}`);
  }
  return row[present[0]!]!;
}

function readPhraseFile(path: string, role: 'gold' | 'prediction'): PhraseList[] {
  const { lines } = readLines(path);
  const lists = path.endsWith('.jsonl')
    ? lines.map((line) =>
        role === 'gold'
          ? toPhraseList(pickField(path, line, parseJsonLine(path, line, GoldRow), ['label', 'keyphrases']))
          : toPhraseList(pickField(path, line, parseJsonLine(path, line, PredictionRow), ['prediction', 'keyphrases'])),
      )
    : lines.map((line) => toPhraseList(line.text));
  if (role === 'gold') {
    lists.forEach((list, i) => {
      if (list.phrases.length === 0) throw new InputFileError(path, String(lines[i]!.number), 'gold has no keyphrases');
    });
  }
  return lists;
}

function readSources(path: string): string[] {
  return readLines(path).lines.map((line) => {
    const row = parseJsonLine(path, line, SourceRow);
    if (row.title_content !== undefined) return row.title_content;
    if (row.source !== undefined) return row.source;
    if (row.title !== undefined && row.body !== undefined) return `${row.title} ${row.body}`;
    throw new InputFileError(path, String(line.number), 'field "title_content", "source" or "title"+"body": missing');
  });
}

function checkRowCount(path: string, rows: number, otherPath: string, otherRows: number): void {
  if (rows !== otherRows) throw new InputFileError(path, '', `has ${rows} rows but ${otherPath} has ${otherRows}; rows must align`);
}

export function loadInputs(files: InputFiles): LoadedInputs {
  let gold: PhraseList[];
  let prediction: PhraseList[];
  let pairsSha256: string | null = null;
  let rowsFile: string;
  if (files.kind === 'pairs') {
    const pairsPath = files.pairs;
    const { lines, sha256 } = readLines(pairsPath);
    pairsSha256 = sha256;
    const rows = lines.map((line) => ({ line, row: parseJsonLine(pairsPath, line, PairRow) }));
    gold = rows.map(({ line, row }) => {
      const list = toPhraseList(row.label);
      if (list.phrases.length === 0) throw new InputFileError(pairsPath, String(line.number), 'field "label": no keyphrases');
      return list;
    });
    prediction = rows.map(({ row }) => toPhraseList(row.prediction));
    rowsFile = pairsPath;
  } else {
    gold = readPhraseFile(files.gold, 'gold');
    prediction = readPhraseFile(files.prediction, 'prediction');
    checkRowCount(files.prediction, prediction.length, files.gold, gold.length);
    rowsFile = files.gold;
  }
  if (gold.length === 0) throw new InputFileError(rowsFile, '', 'no rows');
  let sources: string[] | null = null;
  if (files.source !== undefined) {
    sources = readSources(files.source);
    checkRowCount(files.source, sources.length, rowsFile, gold.length);
  }
  const documents = gold.map((g, i) => ({
    gold: g.phrases,
    prediction: prediction[i]!.phrases,
    goldText: g.text,
    predictionText: prediction[i]!.text,
    source: sources === null ? null : sources[i]!,
  }));
  return { documents, files, pairsSha256 };
}
