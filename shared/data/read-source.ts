import { extname } from 'node:path';
import { InputFileError } from '../errors.js';
import { readCsv } from './csv-reader.js';
import { readJsonl } from './jsonl-reader.js';
import type { ReadItem } from './source-record.js';

// Input formats by file extension. Parquet is not read: the one well-kept pure-JS reader on npm
// (hyparquet) would be a new dependency, so a Parquet file gets an error saying how to convert it.

export const INPUT_EXTENSIONS = ['.jsonl', '.ndjson', '.json', '.csv'];

export function readSource(file: string): AsyncGenerator<ReadItem> {
  const ext = extname(file).toLowerCase();
  if (ext === '.csv') return readCsv(file);
  if (ext === '.jsonl' || ext === '.ndjson' || ext === '.json') return readJsonl(file);
  if (ext === '.parquet') {
    throw new InputFileError(
      file,
      '',
      'Parquet is not supported; convert it to JSON Lines first, e.g. in Python: ' +
        "pandas.read_parquet(f).to_json(out, orient='records', lines=True, force_ascii=False)",
    );
  }
  throw new InputFileError(file, '', `unknown input format "${ext}"; expected one of ${INPUT_EXTENSIONS.join(', ')} (JSON Lines or CSV)`);
}
