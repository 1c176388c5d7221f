import { accessSync, constants, statSync } from 'node:fs';
import { extname } from 'node:path';
import { InputFileError } from '../errors.js';
import { readCsv } from './csv-reader.js';
import { readJsonl } from './jsonl-reader.js';
import { readParquet } from './parquet-reader.js';
import type { ReadItem } from './source-record.js';

// Input formats by file extension.

export const INPUT_EXTENSIONS = ['.jsonl', '.ndjson', '.json', '.csv', '.parquet'];

export function readSource(file: string): AsyncGenerator<ReadItem> {
  const ext = extname(file).toLowerCase();
  const reader = ext === '.csv' ? readCsv : ext === '.jsonl' || ext === '.ndjson' || ext === '.json' ? readJsonl : ext === '.parquet' ? readParquet : null;
  if (reader) {
    checkReadable(file);
    return reader(file);
  }
  throw new InputFileError(file, '', `unknown input format "${ext}"; expected one of ${INPUT_EXTENSIONS.join(', ')} (JSON Lines, CSV or Parquet)`);
}

/** A missing or unreadable input is an InputFileError naming it, not a stream's bare ENOENT. */
function checkReadable(file: string): void {
  let st;
  try {
    st = statSync(file);
    accessSync(file, constants.R_OK);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new InputFileError(file, '', code === 'ENOENT' ? 'no such file' : `cannot read: ${code ?? (cause as Error).message}`, { cause });
  }
  if (!st.isFile()) throw new InputFileError(file, '', 'not a file');
}
