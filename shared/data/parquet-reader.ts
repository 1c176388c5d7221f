import { isUtf8 } from 'node:buffer';
import * as zlib from 'node:zlib';
import {
  asyncBufferFromFile,
  parquetMetadataAsync,
  parquetReadObjects,
  type AsyncBuffer,
  type CompressionCodec,
  type Compressors,
  type FileMetaData,
} from 'hyparquet';
import { InputFileError } from '../errors.js';
import type { ReadItem } from './source-record.js';

// Records of an Apache Parquet file (pandas/pyarrow, polars, Spark exports), read with hyparquet
// (pure JS, no dependencies). Each row becomes a record keyed by the top-level column names, with
// `line` = the 1-based data row, so bad rows read "file:N: field F: ..." like a JSONL line.
// Rows are read one row group at a time: memory holds one row group, not the whole file.
// Parquet is typed, so a row is never unparseable: problems are either whole-file (not Parquet,
// corrupt, a codec we cannot decompress: thrown) or a field's type (reported by toSourceRow).

/** zlib's zstd decoder exists from Node 22.15 / 23.8; reached by name so Node 20's types compile. */
const zstdDecompressSync = (zlib as unknown as { zstdDecompressSync?: (input: Uint8Array) => Buffer }).zstdDecompressSync;

/**
 * Decoders hyparquet lacks, from Node's zlib (no further dependency). hyparquet itself reads
 * UNCOMPRESSED and SNAPPY (its own pure-JS snappy), the codec pandas/pyarrow write by default.
 * GZIP uses `unzip`, which takes the zlib header some old writers used as well as RFC 1952's.
 */
const COMPRESSORS: Compressors = {
  GZIP: (input) => zlib.unzipSync(input),
  BROTLI: (input) => zlib.brotliDecompressSync(input),
  ...(zstdDecompressSync ? { ZSTD: (input: Uint8Array) => zstdDecompressSync(input) } : {}),
};

/**
 * Strings as stored. hyparquet's default decoder drops a leading U+FEFF from every value (a
 * TextDecoder default); news titles scraped from the web do start with one, and JSONL keeps it.
 */
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * A string column value that is not UTF-8. hyparquet's parser hook cannot say which row it is
 * decoding, so the value is marked here and the row reported as a bad line (never U+FFFD text).
 */
class InvalidUtf8 {
  constructor(readonly bytes: Uint8Array) {}
}
const PARSERS = {
  stringFromBytes: (bytes: Uint8Array | undefined) => (bytes === undefined ? bytes : isUtf8(bytes) ? utf8.decode(bytes) : new InvalidUtf8(bytes)),
};

/** The first field (dotted path) holding an InvalidUtf8 value, or null. */
function invalidField(v: unknown, path: string): string | null {
  if (v instanceof InvalidUtf8) return path;
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) {
      const found = invalidField(x, `${path}[${i}]`);
      if (found !== null) return found;
    }
  } else if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    for (const [k, x] of Object.entries(v)) {
      const found = invalidField(x, path ? `${path}.${k}` : k);
      if (found !== null) return found;
    }
  }
  return null;
}

/** The codecs this reader (with the running Node) can decompress. */
export const PARQUET_CODECS: readonly CompressionCodec[] = ['UNCOMPRESSED', 'SNAPPY', ...(Object.keys(COMPRESSORS) as CompressionCodec[])];

export async function* readParquet(file: string): AsyncGenerator<ReadItem> {
  let buffer: AsyncBuffer;
  let meta: FileMetaData;
  try {
    buffer = await asyncBufferFromFile(file);
    meta = await parquetMetadataAsync(buffer);
  } catch (err) {
    throw new InputFileError(file, '', `not a readable Parquet file (${(err as Error).message})`, { cause: err });
  }
  checkCodecs(file, meta);

  let start = 0;
  for (const group of meta.row_groups) {
    const end = start + Number(group.num_rows);
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({ file: buffer, metadata: meta, rowStart: start, rowEnd: end, compressors: COMPRESSORS, parsers: PARSERS });
    } catch (err) {
      throw new InputFileError(file, `rows ${start + 1}-${end}`, `cannot decode Parquet data (${(err as Error).message})`, { cause: err });
    }
    for (const [i, row] of rows.entries()) {
      const bad = invalidField(row, '');
      if (bad !== null) {
        yield { ok: false, bad: { file, line: start + i + 1, field: bad, reason: 'string is not valid UTF-8' } };
        continue;
      }
      yield { ok: true, record: { file, line: start + i + 1, fields: plainValue(row) as Record<string, unknown> } };
    }
    start = end;
  }
}

/** Refuse up front, naming the codec and column, rather than fail part-way through the rows. */
function checkCodecs(file: string, meta: FileMetaData): void {
  for (const group of meta.row_groups) {
    for (const chunk of group.columns) {
      const codec = chunk.meta_data?.codec;
      if (codec === undefined || PARQUET_CODECS.includes(codec)) continue;
      const needsNewerNode = codec === 'ZSTD' ? ` (ZSTD needs Node 22.15 or later; this is ${process.version})` : '';
      throw new InputFileError(
        file,
        '',
        `column "${chunk.meta_data!.path_in_schema.join('.')}" is compressed with ${codec}, which kp-coord cannot read${needsNewerNode}; ` +
          `readable codecs: ${PARQUET_CODECS.join(', ')}. Rewrite it, e.g. in Python: pandas.read_parquet(f).to_parquet(out, compression='snappy')`,
      );
    }
  }
}

/**
 * INT64 columns arrive as bigint, which JSON cannot print and the row rules do not take: a safe
 * integer becomes a number (as JSON.parse gives), a larger one its exact decimal string.
 */
function plainValue(v: unknown): unknown {
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (Array.isArray(v)) return v.map(plainValue);
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = plainValue(x);
    return out;
  }
  return v;
}
