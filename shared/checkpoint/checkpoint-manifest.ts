import { existsSync, readdirSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { InputFileError } from '../errors.js';
import { writeBytesAtomically } from '../weights/atomic-file.js';
import { formatZodIssues } from '../zod-issues.js';
import { rangesOf, sha256File } from './range-shard.js';

// A checkpoint directory `OUTPUT_DIR/checkpoint-<steps done>/` is visible only once its
// manifest.json exists: the coordinator writes it last, by atomic rename, after every rank's
// shard file is complete. It records where training stands and a checksum per file, so a
// truncated or altered shard is detected and the previous checkpoint used instead.

export const MANIFEST = 'manifest.json';

export const FlatRangeSchema = z
  .strictObject({ start: z.number().int().nonnegative(), end: z.number().int().nonnegative() })
  .refine((r) => r.end > r.start, 'a range must be non-empty (end > start)');

/** One rank's file of a checkpoint, as the manifest (and a resuming run's plan) lists it. */
export const ShardFileSchema = z.strictObject({
  name: z.string(),
  rank: z.number().int().nonnegative(),
  start: z.number().int().nonnegative(),
  end: z.number().int().nonnegative(),
  /** The file's flat ranges, sorted and disjoint; absent (checkpoints before stage 3): [[start, end)]. */
  ranges: z.array(FlatRangeSchema).readonly().optional(),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/u),
});

export const CheckpointManifestSchema = z.strictObject({
  version: z.literal(1),
  run_id: z.string(),
  /** Optimizer steps done (the next step to run is this one, 0-based). */
  steps_done: z.number().int().nonnegative(),
  epoch: z.number().int().nonnegative(),
  world: z.number().int().positive(),
  /** Samples per optimizer step; a resume must keep it (any world size, accumulation, per-device split). */
  global_batch_size: z.number().int().positive(),
  zero_stage: z.number().int().min(0).max(3),
  param_count: z.number().int().positive(),
  padded_size: z.number().int().positive(),
  model: z.string(),
  /**
   * The run's PEFT LoRA settings (the files then hold only the adapters) and the vocabulary the model
   * was trained at (larger than the model's own when the data added tokens). Absent in checkpoints
   * written before decoder-only models: full fine-tuning at the model's own vocabulary.
   */
  lora: z
    .strictObject({ r: z.number().int().positive(), lora_alpha: z.number().positive(), lora_dropout: z.number().min(0).lt(1), target_modules: z.array(z.string().min(1)).min(1), scaling: z.number().positive() })
    .nullable()
    .optional(),
  vocab_size: z.number().int().positive().optional(),
  seed: z.number().int(),
  data_seed: z.number().int(),
  files: z.array(ShardFileSchema),
  /** Every evaluation so far (early-stopping state is replayed from it on resume). */
  evals: z.array(z.strictObject({ step: z.number().int(), epoch: z.number().int(), eval_loss: z.number() })),
  best: z.strictObject({ step: z.number().int(), eval_loss: z.number(), dir: z.string() }).nullable(),
  created: z.string(),
});

export type CheckpointManifest = z.infer<typeof CheckpointManifestSchema>;

export async function writeManifest(dir: string, manifest: CheckpointManifest): Promise<void> {
  await writeBytesAtomically(join(dir, MANIFEST), `${JSON.stringify(CheckpointManifestSchema.parse(manifest), null, 2)}\n`);
}

/** Read and fully verify a checkpoint: manifest schema, every file's size and sha256. */
export async function readVerifiedManifest(dir: string): Promise<CheckpointManifest> {
  const path = join(dir, MANIFEST);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    throw new InputFileError(path, '', `unreadable checkpoint manifest: ${(cause as Error).message}`, { cause });
  }
  const parsed = CheckpointManifestSchema.safeParse(raw);
  if (!parsed.success) throw new InputFileError(path, '', formatZodIssues(parsed.error));
  const m = parsed.data;
  checkCoverage(path, m);
  for (const f of m.files) {
    const file = join(dir, f.name);
    const size = existsSync(file) ? (await stat(file)).size : -1;
    if (size !== f.bytes) throw new InputFileError(file, '', size < 0 ? 'missing' : `is ${size} bytes, the manifest says ${f.bytes} (truncated or replaced)`);
    if ((await sha256File(file)) !== f.sha256) throw new InputFileError(file, '', 'sha256 differs from the manifest (altered)');
  }
  return m;
}

/**
 * The files' ranges, all together, must be disjoint and cover [0, param_count) with no gap, and end
 * by padded_size: stages 0-2 cover the padded buffer, stage 3 need not store the padding tail.
 * Each file's own `start`/`end` must be its first range's start and last range's end.
 */
function checkCoverage(path: string, m: CheckpointManifest): void {
  const pieces: { file: string; start: number; end: number }[] = [];
  for (const f of m.files) {
    const ranges = rangesOf(f);
    const first = ranges[0];
    const last = ranges[ranges.length - 1];
    if (first && last && (first.start !== f.start || last.end !== f.end)) {
      throw new InputFileError(path, f.name, `start/end [${f.start}, ${f.end}) differ from its ranges' extent [${first.start}, ${last.end})`);
    }
    for (const [i, r] of ranges.entries()) {
      const prev = ranges[i - 1];
      if (prev && r.start < prev.end) throw new InputFileError(path, f.name, `ranges [${prev.start}, ${prev.end}) and [${r.start}, ${r.end}) are not sorted and disjoint`);
      pieces.push({ file: f.name, start: r.start, end: r.end });
    }
  }
  pieces.sort((a, b) => a.start - b.start || a.end - b.end);
  let covered = 0;
  let coveredBy = '';
  for (const p of pieces) {
    if (p.start > covered) throw new InputFileError(path, p.file, `files leave [${covered}, ${p.start}) of the flat buffer uncovered (before ${p.file}'s range [${p.start}, ${p.end}))`);
    if (p.start < covered) throw new InputFileError(path, p.file, `range [${p.start}, ${p.end}) overlaps [${p.start}, ${Math.min(covered, p.end)}) already held by ${coveredBy}`);
    covered = p.end;
    coveredBy = p.file;
  }
  if (covered < m.param_count) throw new InputFileError(path, coveredBy, `files cover [0, ${covered}) of the ${m.param_count} parameters: [${covered}, ${m.param_count}) is uncovered after ${coveredBy || 'no file'}`);
  if (covered > m.padded_size) throw new InputFileError(path, coveredBy, `files cover [0, ${covered}), past the padded size ${m.padded_size}`);
}

/** Checkpoint directories under `outputDir` that have a manifest, newest (most steps) first. */
export function listCheckpoints(outputDir: string): { dir: string; steps: number }[] {
  return checkpointDirs(outputDir).filter((c) => c.hasManifest);
}

/**
 * Every `checkpoint-<n>` directory under `outputDir`, newest first, with or without a manifest
 * (one without is a save that never finished, or a manifest someone deleted: resume says so).
 */
export function checkpointDirs(outputDir: string): { dir: string; steps: number; hasManifest: boolean }[] {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir)
    .map((name) => /^checkpoint-(\d+)$/u.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ dir: join(outputDir, m[0]), steps: Number(m[1]) }))
    .map((c) => ({ ...c, hasManifest: existsSync(join(c.dir, MANIFEST)) }))
    .sort((a, b) => b.steps - a.steps);
}
