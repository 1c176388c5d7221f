import { z } from 'zod';
import { InputFileError } from '../errors.js';

// The safetensors header (https://github.com/huggingface/safetensors, format section):
//   8 bytes  N, little-endian u64
//   N bytes  UTF-8 JSON object: name -> {dtype, shape, data_offsets: [begin, end]}, plus an optional
//            "__metadata__": {string: string}; writers pad it with spaces to a multiple of 8 bytes
//   rest     the byte buffer; data_offsets are relative to its start
// The reference reader demands that the tensors tile the buffer exactly: sorted by offset, the first
// begins at 0, each begins where the previous ends, and the last ends at the end of the file. We
// check the same, so a file we accept is one `safetensors` accepts too.

/** Element sizes of every dtype the format defines. */
export const DTYPE_SIZES = Object.freeze({
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
});

export type Dtype = keyof typeof DTYPE_SIZES;

export const METADATA_KEY = '__metadata__';
/** The reference implementation refuses headers above 100 MB; so do we (a corrupt length is huge). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  readonly numel: number;
  /** Offsets in the data buffer (after the header), as stored in the file. */
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensors in header order. */
  readonly tensors: readonly TensorInfo[];
}

const SafeIndex = z.number().refine(Number.isSafeInteger, 'must be an integer').pipe(z.number().nonnegative());

const TensorEntrySchema = z.object({
  dtype: z.string(),
  shape: z.array(SafeIndex),
  data_offsets: z.tuple([SafeIndex, SafeIndex]),
});

const MetadataSchema = z.record(z.string(), z.string());

function isDtype(s: string): s is Dtype {
  return Object.hasOwn(DTYPE_SIZES, s);
}

function issues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(value)'}: ${i.message}`).join('; ');
}

/**
 * Parse and validate the JSON header. `dataBytes` is the length of the byte buffer that follows it in
 * the file; `file` names the file in errors.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, dataBytes: number, file: string): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch (cause) {
    throw new InputFileError(file, 'header', 'is not valid UTF-8', { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new InputFileError(file, 'header', `is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new InputFileError(file, 'header', 'must be a JSON object');
  }

  let metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === METADATA_KEY) {
      const parsed = MetadataSchema.safeParse(value);
      if (!parsed.success) throw new InputFileError(file, METADATA_KEY, `must map strings to strings: ${issues(parsed.error)}`);
      metadata = parsed.data;
      continue;
    }
    const where = `tensor '${name}'`;
    const parsed = TensorEntrySchema.safeParse(value);
    if (!parsed.success) throw new InputFileError(file, where, `invalid header entry: ${issues(parsed.error)}`);
    const { dtype, shape, data_offsets: [begin, end] } = parsed.data;
    if (!isDtype(dtype)) {
      throw new InputFileError(file, where, `unknown dtype '${dtype}' (known: ${Object.keys(DTYPE_SIZES).join(', ')})`);
    }
    const numel = shape.reduce((a, b) => a * b, 1);
    const bytes = numel * DTYPE_SIZES[dtype];
    if (!Number.isSafeInteger(bytes)) throw new InputFileError(file, where, `shape [${shape.join(', ')}] is too large`);
    if (end < begin) throw new InputFileError(file, where, `data_offsets [${begin}, ${end}] end before they begin`);
    if (end - begin !== bytes) {
      throw new InputFileError(
        file,
        where,
        `shape [${shape.join(', ')}] of ${dtype} needs ${bytes} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    }
    tensors.push(Object.freeze({ name, dtype, shape: Object.freeze([...shape]), numel, begin, end }));
  }
  checkTiling(tensors, dataBytes, file);
  return Object.freeze({ metadata: Object.freeze(metadata), tensors: Object.freeze(tensors) });
}

function checkTiling(tensors: readonly TensorInfo[], dataBytes: number, file: string): void {
  const byOffset = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: TensorInfo | undefined;
  for (const t of byOffset) {
    const where = `tensor '${t.name}'`;
    if (t.end > dataBytes) {
      throw new InputFileError(
        file,
        where,
        `data_offsets [${t.begin}, ${t.end}] run past the end of the data (${dataBytes} bytes): file truncated or offsets out of range`,
      );
    }
    if (t.begin < cursor) {
      throw new InputFileError(file, where, `data_offsets [${t.begin}, ${t.end}] overlap tensor '${previous!.name}' [${previous!.begin}, ${previous!.end}]`);
    }
    if (t.begin > cursor) {
      throw new InputFileError(file, where, `data_offsets [${t.begin}, ${t.end}] leave a gap after byte ${cursor} of the data (tensors must be contiguous)`);
    }
    cursor = t.end;
    previous = t;
  }
  if (cursor !== dataBytes) {
    throw new InputFileError(file, 'data', `${dataBytes - cursor} bytes after the last tensor (the tensors cover ${cursor} of ${dataBytes} bytes)`);
  }
}

export interface HeaderEntry {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
}

/**
 * The header bytes for tensors laid out back to back in the given order, space-padded so the data
 * starts 8-byte aligned (as the reference writer does); without the 8-byte length prefix.
 */
export function encodeSafetensorsHeader(entries: readonly HeaderEntry[], metadata: Readonly<Record<string, string>> | undefined): Buffer {
  // Null prototype: a tensor named '__proto__' must stay an ordinary key.
  const json = Object.create(null) as Record<string, unknown>;
  if (metadata) json[METADATA_KEY] = metadata;
  let offset = 0;
  for (const e of entries) {
    if (e.name === METADATA_KEY || Object.hasOwn(json, e.name)) throw new RangeError(`duplicate or reserved tensor name '${e.name}'`);
    const bytes = e.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZES[e.dtype];
    json[e.name] = { dtype: e.dtype, shape: [...e.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const text = Buffer.from(JSON.stringify(json), 'utf8');
  const padded = Buffer.alloc(Math.ceil(text.length / 8) * 8, 0x20);
  text.copy(padded);
  return padded;
}
