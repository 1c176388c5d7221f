import { readFile } from 'node:fs/promises';
import { isAbsolute, normalize, sep } from 'node:path';
import { z } from 'zod';
import { InputFileError } from '../errors.js';
import { formatZodIssues } from '../zod-issues.js';

// `model.safetensors.index.json`, as transformers writes it for sharded checkpoints:
//   {"metadata": {"total_size": 990000000}, "weight_map": {"shared.weight": "model-00001-of-00002.safetensors", ...}}

export const SAFE_WEIGHTS_NAME = 'model.safetensors';
export const SAFE_WEIGHTS_INDEX_NAME = 'model.safetensors.index.json';

const ShardFileName = z
  .string()
  .min(1)
  .refine((f) => !isAbsolute(f) && !normalize(f).split(sep).includes('..'), 'must be a file name inside the checkpoint directory');

const ShardedIndexSchema = z.object({
  metadata: z.record(z.string(), z.unknown()).optional(),
  weight_map: z.record(z.string(), ShardFileName).refine((m) => Object.keys(m).length > 0, 'must list at least one tensor'),
});

export interface ShardedIndex {
  /** Tensor name -> shard file name (relative to the checkpoint directory). */
  readonly weightMap: ReadonlyMap<string, string>;
  /** Distinct shard files, in first-mention order. */
  readonly files: readonly string[];
}

export async function readShardedIndex(path: string): Promise<ShardedIndex> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new InputFileError(path, '', `cannot read: ${(cause as Error).message}`, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new InputFileError(path, '', `not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const parsed = ShardedIndexSchema.safeParse(json);
  if (!parsed.success) {
    const fields = formatZodIssues(parsed.error);
    throw new InputFileError(path, '', `invalid sharded index: ${fields}`);
  }
  const weightMap = new Map(Object.entries(parsed.data.weight_map));
  return Object.freeze({ weightMap, files: Object.freeze([...new Set(weightMap.values())]) });
}
