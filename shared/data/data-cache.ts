import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputFileError } from '../errors.js';
import { KpCoordError } from '../errors.js';
import type { ModelFamily } from '../models/model-family.js';
import { withAddedTokens } from '../tokenizer/added-tokens.js';
import { loadTokenizer } from '../tokenizer/load-tokenizer.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import {
  assertLittleEndian,
  CacheManifest,
  cacheLayout,
  type CacheLayout,
  MANIFEST_FILE,
  SPLIT_NAMES,
  type SplitManifest,
  type SplitName,
  type TokenArray,
  type TokenDtype,
} from './cache-format.js';
import type { SampleSource } from './write-cache.js';

// Workers read the tokenised cache, never the raw text. Everything is loaded once; each sample's
// ids are then views into the split's one buffer (no copy per sample).

export interface DataSplit {
  readonly name: SplitName;
  readonly size: number;
  /** Input ids of sample i (seq2seq: ending in eos; causal: the prompt): a view, do not write to it. */
  inputIds(i: number): TokenArray;
  /** Label ids of sample i, ending in eos: a view, do not write to it. */
  labelIds(i: number): TokenArray;
  inputLength(i: number): number;
  labelLength(i: number): number;
  /** Where sample i came from (read from the rows file on first use). */
  source(i: number): SampleSource;
}

export interface DataCache {
  readonly dir: string;
  readonly manifest: CacheManifest;
  readonly train: DataSplit;
  /** Absent when the cache was prepared without an eval split. */
  readonly eval: DataSplit | undefined;
}

export interface OpenCacheOptions {
  /** Refuse the cache unless it was made by the tokenizer with this fingerprint. */
  readonly tokenizerFingerprint?: string;
  /** Also check every file's sha256 (reads each byte once more; sizes are always checked). */
  readonly verifyChecksums?: boolean;
  /** Refuse the cache unless its layout suits this model family (see checkCacheLayout). */
  readonly modelType?: ModelType;
}

/** HF `model_type` of the families kp-coord trains. */
export type ModelType = ModelFamily['modelType'];

/** The cache layout a model family trains on: T5 is encoder-decoder, GPT-NeoX decoder-only. */
export function layoutForModel(modelType: ModelType): CacheLayout {
  return modelType === 'gpt_neox' ? 'causal' : 'seq2seq';
}

/** Throw unless the cache in `dir` (with manifest `m`) holds the layout `modelType` trains on. */
export function checkCacheLayout(dir: string, m: CacheManifest, modelType: ModelType): void {
  const have = cacheLayout(m);
  const want = layoutForModel(modelType);
  if (have === want) return;
  const what = (l: CacheLayout): string => (l === 'causal' ? 'causal (decoder-only: prompt + completion in one sequence)' : 'seq2seq (encoder input / decoder labels)');
  throw new InputFileError(
    join(dir, MANIFEST_FILE),
    '',
    `layout: the data cache holds ${what(have)} samples, but the model is ${modelType}, which trains on ${what(want)} samples; ` +
      `prepare the data again with \`kp-coord data prepare --layout ${want}\``,
  );
}

/**
 * The tokenizer that made the cache's ids: the one named in the manifest, with the prefix tokens
 * a causal cache added (decoding, generation). Checked against the recorded fingerprint.
 */
export function loadCacheTokenizer(m: CacheManifest): Tokenizer {
  const base = loadTokenizer(m.tokenizer.spec);
  if (base.fingerprint !== m.tokenizer.fingerprint) {
    throw new KpCoordError(`tokenizer ${m.tokenizer.spec} has changed since the data cache was made (fingerprint ${base.fingerprint.slice(0, 12)}, the cache's ${m.tokenizer.fingerprint.slice(0, 12)})`);
  }
  const added = m.causal?.added_tokens ?? [];
  const t = withAddedTokens(base, added.map((a) => a.content));
  added.forEach((a, k) => {
    if (a.id !== base.vocabSize + k) throw new KpCoordError(`data cache: added token ${JSON.stringify(a.content)} has id ${a.id}, expected ${base.vocabSize + k}`);
  });
  return t;
}

function readManifest(dir: string): CacheManifest {
  const file = join(dir, MANIFEST_FILE);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new InputFileError(file, '', `cannot read the data cache manifest (${(err as Error).message}); was the folder made by "kp-coord data prepare"?`, { cause: err });
  }
  const r = CacheManifest.safeParse(json);
  if (!r.success) {
    const fields = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new InputFileError(file, '', `not a valid data cache manifest: ${fields.join('; ')}`);
  }
  return r.data;
}

function loadFile(dir: string, entry: { name: string; bytes: number; sha256: string }, verify: boolean): Buffer {
  const file = join(dir, entry.name);
  let size: number;
  try {
    size = statSync(file).size;
  } catch (err) {
    throw new InputFileError(file, '', 'missing from the data cache', { cause: err });
  }
  if (size !== entry.bytes) throw new InputFileError(file, '', `is ${size} bytes, the manifest says ${entry.bytes}: the cache is damaged`);
  const bytes = readFileSync(file);
  if (verify) {
    const sha = createHash('sha256').update(bytes).digest('hex');
    if (sha !== entry.sha256) throw new InputFileError(file, '', `sha256 ${sha} differs from the manifest's ${entry.sha256}: the cache is damaged`);
  }
  return bytes;
}

function tokenView(buf: Buffer, dtype: TokenDtype): TokenArray {
  const width = dtype === 'uint16' ? 2 : 4;
  // A typed view needs an aligned offset; readFileSync buffers normally start at 0, copy otherwise.
  const b = buf.byteOffset % width === 0 ? buf : Buffer.from(buf);
  return dtype === 'uint16' ? new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2) : new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

function openSplit(dir: string, name: SplitName, m: SplitManifest, dtype: TokenDtype, verify: boolean): DataSplit {
  const inputs = tokenView(loadFile(dir, m.files.inputs, verify), dtype);
  const labels = tokenView(loadFile(dir, m.files.labels, verify), dtype);
  const indexBuf = loadFile(dir, m.files.index, verify);
  const n = m.size;
  const indexFile = join(dir, m.files.index.name);
  if (indexBuf.byteLength !== 16 * (n + 1)) throw new InputFileError(indexFile, '', `holds ${indexBuf.byteLength} bytes, expected ${16 * (n + 1)} for ${n} samples`);
  // Offsets are uint64 on disk; as doubles they are exact (< 2^53) and cheap to read per sample.
  const inputOff = new Float64Array(n + 1);
  const labelOff = new Float64Array(n + 1);
  for (let i = 0; i <= n; i++) {
    inputOff[i] = Number(indexBuf.readBigUInt64LE(8 * i));
    labelOff[i] = Number(indexBuf.readBigUInt64LE(8 * (n + 1 + i)));
  }
  for (const [what, off, total] of [['input', inputOff, inputs.length], ['label', labelOff, labels.length]] as const) {
    if (off[0] !== 0 || off[n] !== total) throw new InputFileError(indexFile, '', `${what} offsets span ${off[0]}..${off[n]}, the token file holds ${total}`);
    for (let i = 0; i < n; i++) {
      if (!(off[i + 1]! > off[i]!)) throw new InputFileError(indexFile, '', `${what} offsets are not increasing at sample ${i} (every sample holds at least one token)`);
    }
  }
  let sources: SampleSource[] | undefined;
  const check = (i: number): void => {
    if (!Number.isInteger(i) || i < 0 || i >= n) throw new RangeError(`${name} split: sample ${i} is outside 0..${n - 1}`);
  };
  return {
    name,
    size: n,
    inputIds(i) {
      check(i);
      return inputs.subarray(inputOff[i]!, inputOff[i + 1]!);
    },
    labelIds(i) {
      check(i);
      return labels.subarray(labelOff[i]!, labelOff[i + 1]!);
    },
    inputLength(i) {
      check(i);
      return inputOff[i + 1]! - inputOff[i]!;
    },
    labelLength(i) {
      check(i);
      return labelOff[i + 1]! - labelOff[i]!;
    },
    source(i) {
      check(i);
      sources ??= loadFile(dir, m.files.rows, false)
        .toString('utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as SampleSource);
      return sources[i]!;
    },
  };
}

/** Input length of every sample (eos included), e.g. for the sampler's length bucketing. */
export function inputLengths(split: DataSplit): Int32Array {
  return Int32Array.from({ length: split.size }, (_, i) => split.inputLength(i));
}

/**
 * The length that sets a sample's padded width, for length bucketing: the input for seq2seq, the
 * whole sequence (prompt + completion) for causal.
 */
export function sampleLengths(split: DataSplit, layout: CacheLayout): Int32Array {
  if (layout === 'seq2seq') return inputLengths(split);
  return Int32Array.from({ length: split.size }, (_, i) => split.inputLength(i) + split.labelLength(i));
}

/** Open a cache written by `kp-coord data prepare`: manifest validated, file sizes and offsets checked. */
export function openDataCache(dir: string, options: OpenCacheOptions = {}): DataCache {
  assertLittleEndian();
  const manifest = readManifest(dir);
  if (options.tokenizerFingerprint !== undefined && options.tokenizerFingerprint !== manifest.tokenizer.fingerprint) {
    throw new InputFileError(
      join(dir, MANIFEST_FILE),
      '',
      `tokenizer.fingerprint: the cache was made with tokenizer ${manifest.tokenizer.spec} (${manifest.tokenizer.fingerprint.slice(0, 12)}), ` +
        `this run uses ${options.tokenizerFingerprint.slice(0, 12)}; prepare the data again with the run's tokenizer`,
    );
  }
  if (options.modelType !== undefined) checkCacheLayout(dir, manifest, options.modelType);
  const verify = options.verifyChecksums ?? false;
  const splits: Partial<Record<SplitName, DataSplit>> = {};
  for (const name of SPLIT_NAMES) {
    const m = manifest.splits[name];
    if (m !== undefined) splits[name] = openSplit(dir, name, m, manifest.token_dtype, verify);
  }
  return { dir, manifest, train: splits.train!, eval: splits.eval };
}
