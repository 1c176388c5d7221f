import { z } from 'zod';
import { DataRules } from './data-rules.js';

// The tokenised data cache that `kp-coord data prepare` writes and workers read.
//
// DIR/
//   manifest.json            this schema; written last (the folder appears by one rename)
//   report.json              what prepare read, dropped and kept (for people; readers ignore it)
//   <split>.inputs.bin       input ids of all samples, concatenated (seq2seq: each ending in eos;
//                            causal: the prompt, no eos)
//   <split>.labels.bin       label ids likewise, each ending in eos (causal: the completion)
//   <split>.index.bin        uint64 LE offsets in tokens: input offsets [size + 1], then label offsets [size + 1]
//   <split>.rows.jsonl       one {"id","file","line"} per sample: where it came from
//
// Token ids are little-endian uint16 when every id fits 16 bits (vocabulary of at most 65,536 ids:
// half the bytes; polyglot-ko and pko-t5 both fit), else int32. Readers view the bytes in place.
//
// [Note: cache layout] `layout` says what a sample is for. "seq2seq" (T5): the input and the label
// are the encoder's and the decoder's sequences. "causal" (decoder-only): the input is the prompt
// (input_prefix + article + target_prefix, no eos) and the label the completion (keyphrases + eos);
// the model's one sequence is their concatenation, and the prompt length is the input's length.
// The files are the same either way. Version 1 manifests have no `layout` and are seq2seq; version 2
// always names it. A causal cache made with the prefixes as added tokens records them under
// `causal.added_tokens` (ids after the tokenizer's vocabulary) and the vocabulary size they need.

export const CACHE_FORMAT = 'kp-coord-data-cache';
/** What prepare writes; readers also take version 1 (no `layout`: seq2seq). */
export const CACHE_FORMAT_VERSION = 2;

export const CACHE_LAYOUTS = ['seq2seq', 'causal'] as const;
export type CacheLayout = (typeof CACHE_LAYOUTS)[number];
/** How a causal cache's prefixes were tokenised: as ordinary text, or as new whole tokens (HF add_tokens). */
export const PREFIX_TOKENS = ['text', 'added'] as const;
export type PrefixTokens = (typeof PREFIX_TOKENS)[number];
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

export const CausalManifest = z
  .object({
    prefix_tokens: z.enum(PREFIX_TOKENS),
    /** The prefixes as new tokens (prefix_tokens "added"), in id order; empty for "text". */
    added_tokens: z.array(z.object({ content: z.string().min(1), id: z.number().int().nonnegative() }).strict()),
    /** Ids the model's embedding must hold: the tokenizer's vocabulary plus the added tokens. */
    vocab_size: z.number().int().positive(),
  })
  .strict();
export type CausalManifest = z.infer<typeof CausalManifest>;

export const CacheManifest = z
  .object({
    format: z.literal(CACHE_FORMAT),
    format_version: z.union([z.literal(1), z.literal(CACHE_FORMAT_VERSION)]),
    /** Absent only in version 1 manifests (seq2seq). */
    layout: z.enum(CACHE_LAYOUTS).optional(),
    /** Present exactly when layout is "causal". */
    causal: CausalManifest.optional(),
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
  .strict()
  .superRefine((m, ctx) => {
    if (m.format_version === 1 && m.layout !== undefined) ctx.addIssue({ code: 'custom', path: ['layout'], message: 'version 1 caches have no layout (they are seq2seq)' });
    if (m.format_version >= 2 && m.layout === undefined) ctx.addIssue({ code: 'custom', path: ['layout'], message: 'is required from format_version 2 ("seq2seq" or "causal")' });
    if ((m.layout === 'causal') !== (m.causal !== undefined)) ctx.addIssue({ code: 'custom', path: ['causal'], message: 'is given exactly when layout is "causal"' });
  });
export type CacheManifest = z.infer<typeof CacheManifest>;

/** The cache's binary files are little-endian and are viewed in place, so the host must be too. */
export function assertLittleEndian(): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new RangeError('the data cache is little-endian and viewed in place; this host is big-endian');
  }
}

/** The manifest's layout; version 1 caches are seq2seq. */
export function cacheLayout(m: CacheManifest): CacheLayout {
  return m.layout ?? 'seq2seq';
}

/**
 * The vocabulary a model's embeddings are resized to for this cache (HF
 * `model.resize_token_embeddings(len(tokenizer))` after `tokenizer.add_tokens`): the tokenizer's
 * length with the added prefix tokens; null when the cache adds none (the model keeps its own).
 */
export function embeddingResize(m: CacheManifest): number | null {
  return m.causal?.prefix_tokens === 'added' ? cacheVocabSize(m) : null;
}

/** Ids a model must embed to train on the cache (added prefix tokens included). */
export function cacheVocabSize(m: CacheManifest): number {
  return m.causal?.vocab_size ?? m.tokenizer.vocab_size;
}
