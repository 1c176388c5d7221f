import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsFile, writeSafetensors } from '../weights/safetensors.js';

// [Note: universal checkpoint] A checkpoint is the flat parameter buffer and the Adam moments cut
// into the writing ranks' FlatShard ranges, one safetensors file per rank:
//   rank-<r>-of-<N>.safetensors   params, exp_avg, exp_avg_sq for [start, end) of the padded buffer
// The files together cover the whole buffer, whatever the stage (at stage 0 every rank holds all
// moments, and writes its range of them). A reader with another world size takes, for any range
// it needs, the overlapping parts of whichever files cover it: no reshaping, no conversion.

export const SHARD_TENSORS = ['params', 'exp_avg', 'exp_avg_sq'] as const;
export type ShardTensor = (typeof SHARD_TENSORS)[number];

export interface ShardFile {
  readonly name: string;
  readonly rank: number;
  readonly start: number;
  readonly end: number;
  readonly bytes: number;
  readonly sha256: string;
}

export function shardFileName(rank: number, world: number): string {
  return `rank-${rank}-of-${world}.safetensors`;
}

/** Write this rank's range (atomically) and describe the file for the manifest. */
export async function writeRangeShard(
  dir: string,
  rank: number,
  world: number,
  range: { start: number; end: number },
  tensors: Readonly<Record<ShardTensor, Float32Array>>,
  optimizerStep: number,
): Promise<ShardFile> {
  const name = shardFileName(rank, world);
  const path = join(dir, name);
  await writeSafetensors(
    path,
    SHARD_TENSORS.map((t) => ({ name: t, dtype: 'F32' as const, shape: [tensors[t].length], data: tensors[t] })),
    { format: 'kp-coord-range-shard', rank: String(rank), world: String(world), start: String(range.start), end: String(range.end), optimizer_step: String(optimizerStep) },
  );
  const bytes = (await stat(path)).size;
  return { name, rank, start: range.start, end: range.end, bytes, sha256: await sha256File(path) };
}

/** sha256 of a file, streamed (checkpoint shards can exceed Node's 2 GiB readFile limit). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Fill `dest` (the padded-buffer range [start, start + dest.length)) with `tensor` from whichever
 * shard files overlap it (universal re-slicing).
 */
export async function readRange(dir: string, files: readonly ShardFile[], tensor: ShardTensor, start: number, dest: Float32Array): Promise<void> {
  const end = start + dest.length;
  for (const f of files) {
    const from = Math.max(start, f.start);
    const to = Math.min(end, f.end);
    if (from >= to) continue;
    const file = await SafetensorsFile.open(join(dir, f.name));
    try {
      const data = await file.readFloat32(tensor);
      dest.set(data.subarray(from - f.start, to - f.start), from - start);
    } finally {
      await file.close();
    }
  }
}
