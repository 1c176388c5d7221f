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
  if (ext === '.csv') return readCsv(file);
  if (ext === '.jsonl' || ext === '.ndjson' || ext === '.json') return readJsonl(file);
  if (ext === '.parquet') return readParquet(file);
  throw new InputFileError(file, '', `unknown input format "${ext}"; expected one of ${INPUT_EXTENSIONS.join(', ')} (JSON Lines, CSV or Parquet)`);
}
