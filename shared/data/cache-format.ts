import { z } from 'zod';
import { DataRules } from './data-rules.js';

// The tokenised data cache that `kp-coord data prepare` writes and workers read.
//
// DIR/
//   manifest.json            this schema; written last (the folder appears by one rename)
//   report.json              what prepare read, dropped and kept (for people; readers ignore it)
//   <split>.inputs.bin       input ids of all samples, concatenated, each ending in eos
//   <split>.labels.bin       label ids likewise
//   <split>.index.bin        uint64 LE offsets in tokens: input offsets [size + 1], then label offsets [size + 1]
//   <split>.rows.jsonl       one {"id","file","line"} per sample: where it came from
//
// Token ids are little-endian uint16 when every id fits 16 bits (vocabulary of at most 65,536 ids:
// half the bytes; polyglot-ko and pko-t5 both fit), else int32. Readers view the bytes in place.

export const CACHE_FORMAT = 'kp-coord-data-cache';
export const CACHE_FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';
export const REPORT_FILE = 'report.json';

export type TokenDtype = 'uint16' | 'int32';
export type TokenArray = Uint16Array | Int32Array;

export function tokenDtypeFor(vocabSize: number): TokenDtype {
  return vocabSize <= 65536 ? 'uint16' : 'int32';
}

export function bytesPerToken(dtype: TokenDtype): number {
  return dtype === 'uint16' ? 2 : 4;
}

export const SPLIT_NAMES = ['train', 'eval'] as const;
export type SplitName = (typeof SPLIT_NAMES)[number];

export function splitFileNames(split: SplitName): { inputs: string; labels: string; index: string; rows: string } {
  return { inputs: `${split}.inputs.bin`, labels: `${split}.labels.bin`, index: `${split}.index.bin`, rows: `${split}.rows.jsonl` };
}

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/u, 'a sha256 in hex');
const FileEntry = z.object({ name: z.string().min(1), bytes: z.number().int().nonnegative(), sha256: Sha256 }).strict();

export const SplitManifest = z
  .object({
    size: z.number().int().nonnegative(),
    input_tokens: z.number().int().nonnegative(),
    label_tokens: z.number().int().nonnegative(),
    files: z.object({ inputs: FileEntry, labels: FileEntry, index: FileEntry, rows: FileEntry }).strict(),
  })
  .strict();
export type SplitManifest = z.infer<typeof SplitManifest>;

export const CacheManifest = z
  .object({
    format: z.literal(CACHE_FORMAT),
    format_version: z.literal(CACHE_FORMAT_VERSION),
    created_at: z.string(),
    tokenizer: z
      .object({
        spec: z.string(),
        kind: z.enum(['byte', 'hf']),
        vocab_size: z.number().int().positive(),
        pad_id: z.number().int().nonnegative(),
        eos_id: z.number().int().nonnegative(),
        unk_id: z.number().int().min(-1),
        fingerprint: Sha256,
      })
      .strict(),
    token_dtype: z.enum(['uint16', 'int32']),
    rules: DataRules,
    sources: z.array(z.object({ path: z.string(), role: z.enum(['train', 'eval']), bytes: z.number().int().nonnegative(), sha256: Sha256 }).strict()),
    counts: z.object({ rows_read: z.number().int().nonnegative(), bad_lines: z.number().int().nonnegative(), kept: z.number().int().nonnegative() }).loose(),
    splits: z.object({ train: SplitManifest, eval: SplitManifest.optional() }).strict(),
  })
  .strict();
export type CacheManifest = z.infer<typeof CacheManifest>;

/** The cache's binary files are little-endian and are viewed in place, so the host must be too. */
export function assertLittleEndian(): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new RangeError('the data cache is little-endian and viewed in place; this host is big-endian');
  }
}
