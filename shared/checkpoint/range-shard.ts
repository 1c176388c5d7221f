import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputFileError } from '../errors.js';
import { SafetensorsFile, writeSafetensors } from '../weights/safetensors.js';

// [Note: universal checkpoint] A checkpoint is the flat parameter buffer and the Adam moments cut
// into the writing ranks' flat ranges, one safetensors file per rank:
//   rank-<r>-of-<N>.safetensors   params, exp_avg, exp_avg_sq for the file's ranges
// A file holds one or more flat ranges, sorted and disjoint; its tensors are the concatenation of
// those ranges in order. Stages 0-2 write one range per rank (its FlatShard [start, end) of the
// padded buffer); stage 3 writes a rank's piece of every parameter unit, many ranges. The files
// together cover the whole buffer, whatever the stage (at stage 0 every rank holds all moments,
// and writes its range of them); stage 3 need not store the padding tail past the parameters. A
// reader with another world size or stage takes, for any range it needs, the overlapping parts of
// whichever files cover it: no reshaping, no conversion. Elements no file covers (padding) are
// left as the reader's buffer has them.

export const SHARD_TENSORS = ['params', 'exp_avg', 'exp_avg_sq'] as const;
export type ShardTensor = (typeof SHARD_TENSORS)[number];

/** A half-open flat range [start, end) of the (padded) parameter buffer. */
export interface FlatRange {
  readonly start: number;
  readonly end: number;
}

export interface ShardFile {
  readonly name: string;
  readonly rank: number;
  /** The first range's start and the last range's end (what single-range readers used). */
  readonly start: number;
  readonly end: number;
  /** The file's ranges, sorted, disjoint, each non-empty; its tensors are their concatenation. */
  readonly ranges: readonly FlatRange[];
  readonly bytes: number;
  readonly sha256: string;
}

/** What a reader needs of a file entry: manifests and plans written before `ranges` lack it. */
export type ShardFileRef = Pick<ShardFile, 'name' | 'start' | 'end'> & { readonly ranges?: readonly FlatRange[] | undefined };

/** A file entry's ranges; an entry without `ranges` (a single-range checkpoint) holds [start, end). */
export function rangesOf(f: ShardFileRef): readonly FlatRange[] {
  return f.ranges ?? (f.end > f.start ? [{ start: f.start, end: f.end }] : []);
}

/** Ranges as safetensors metadata (values must be strings): "0:100,200:300". */
export function formatRanges(ranges: readonly FlatRange[]): string {
  return ranges.map((r) => `${r.start}:${r.end}`).join(',');
}

export function shardFileName(rank: number, world: number): string {
  return `rank-${rank}-of-${world}.safetensors`;
}

/**
 * Write this rank's range, or ranges, (atomically) and describe the file for the manifest. Each
 * tensor is the concatenation of the ranges in order, so its length is their total length.
 */
export async function writeRangeShard(
  dir: string,
  rank: number,
  world: number,
  range: FlatRange | readonly FlatRange[],
  tensors: Readonly<Record<ShardTensor, Float32Array>>,
  optimizerStep: number,
): Promise<ShardFile> {
  const ranges = checkedRanges(range);
  const total = ranges.reduce((n, r) => n + r.end - r.start, 0);
  for (const t of SHARD_TENSORS) {
    if (tensors[t].length !== total) {
      throw new RangeError(`writeRangeShard: tensor '${t}' has ${tensors[t].length} elements but the ranges ${formatRanges(ranges) || '(none)'} hold ${total}`);
    }
  }
  const first = ranges[0]?.start ?? (isSingle(range) ? range.start : 0);
  const last = ranges[ranges.length - 1]?.end ?? first;
  const name = shardFileName(rank, world);
  const path = join(dir, name);
  await writeSafetensors(
    path,
    SHARD_TENSORS.map((t) => ({ name: t, dtype: 'F32' as const, shape: [tensors[t].length], data: tensors[t] })),
    {
      format: 'kp-coord-range-shard', rank: String(rank), world: String(world), start: String(first), end: String(last),
      ranges: formatRanges(ranges), optimizer_step: String(optimizerStep),
    },
  );
  const bytes = (await stat(path)).size;
  return { name, rank, start: first, end: last, ranges, bytes, sha256: await sha256File(path) };
}

function isSingle(range: FlatRange | readonly FlatRange[]): range is FlatRange {
  return !Array.isArray(range);
}

/** One range (empty allowed, as before) or a list of sorted, disjoint, non-empty ranges, frozen. */
function checkedRanges(range: FlatRange | readonly FlatRange[]): readonly FlatRange[] {
  const isIndex = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;
  if (isSingle(range)) {
    if (!isIndex(range.start) || !isIndex(range.end) || range.end < range.start) {
      throw new RangeError(`writeRangeShard: range [${range.start}, ${range.end}) is not a range of flat indices`);
    }
    return Object.freeze(range.end > range.start ? [Object.freeze({ start: range.start, end: range.end })] : []);
  }
  let prevEnd = 0;
  return Object.freeze(
    range.map((r, i) => {
      if (!isIndex(r.start) || !isIndex(r.end) || r.end <= r.start) {
        throw new RangeError(`writeRangeShard: ranges[${i}] [${r.start}, ${r.end}) is not a non-empty range of flat indices`);
      }
      if (r.start < prevEnd) throw new RangeError(`writeRangeShard: ranges[${i}] [${r.start}, ${r.end}) starts before ranges[${i - 1}] ends (${prevEnd}): ranges must be sorted and disjoint`);
      prevEnd = r.end;
      return Object.freeze({ start: r.start, end: r.end });
    }),
  );
}

/** sha256 of a file, streamed (checkpoint shards can exceed Node's 2 GiB readFile limit). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Fill `dest` (the flat-buffer range [start, start + dest.length)) with `tensor` from every range of
 * every shard file that overlaps it (universal re-slicing). Elements no file covers are left as
 * they are (a fresh buffer's zeros: padding).
 */
export function readRange(dir: string, files: readonly ShardFileRef[], tensor: ShardTensor, start: number, dest: Float32Array): Promise<void> {
  return readRanges(dir, files, tensor, [{ start, dest }]);
}

/**
 * `readRange` for several windows at once (a stage-3 rank's chunk of every unit): each file is
 * opened at most once per call, and only the overlapping elements are read from it.
 */
export async function readRanges(dir: string, files: readonly ShardFileRef[], tensor: ShardTensor, windows: readonly { readonly start: number; readonly dest: Float32Array }[]): Promise<void> {
  for (const f of files) {
    // Each overlap: where it lands (a window's dest) and where it sits in the file's concatenated tensor.
    const pieces: { dest: Float32Array; from: number }[] = [];
    let offset = 0;
    for (const r of rangesOf(f)) {
      for (const w of windows) {
        const from = Math.max(w.start, r.start);
        const to = Math.min(w.start + w.dest.length, r.end);
        if (from < to) pieces.push({ dest: w.dest.subarray(from - w.start, to - w.start), from: offset + (from - r.start) });
      }
      offset += r.end - r.start;
    }
    if (pieces.length === 0) continue;
    const path = join(dir, f.name);
    const file = await SafetensorsFile.open(path);
    try {
      const numel = file.info(tensor).numel;
      if (numel !== offset) throw new InputFileError(path, `tensor '${tensor}'`, `has ${numel} elements but the file's ranges ${formatRanges(rangesOf(f))} hold ${offset}`);
      for (const p of pieces) await file.readF32Slice(tensor, p.from, p.dest);
    } finally {
      await file.close();
    }
  }
}
