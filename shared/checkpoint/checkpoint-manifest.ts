import { existsSync, readdirSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { InputFileError } from '../errors.js';
import { writeBytesAtomically } from '../weights/atomic-file.js';
import { formatZodIssues } from '../zod-issues.js';
import { sha256File } from './range-shard.js';

// A checkpoint directory `OUTPUT_DIR/checkpoint-<steps done>/` is visible only once its
// manifest.json exists: the coordinator writes it last, by atomic rename, after every rank's
// shard file is complete. It records where training stands and a checksum per file, so a
// truncated or altered shard is detected and the previous checkpoint used instead.

export const MANIFEST = 'manifest.json';

export const CheckpointManifestSchema = z.strictObject({
  version: z.literal(1),
  run_id: z.string(),
  /** Optimizer steps done (the next step to run is this one, 0-based). */
  steps_done: z.number().int().nonnegative(),
  epoch: z.number().int().nonnegative(),
  world: z.number().int().positive(),
  /** Samples per optimizer step; a resume must keep it (any world size, accumulation, per-device split). */
  global_batch_size: z.number().int().positive(),
  zero_stage: z.number().int().min(0).max(2),
  param_count: z.number().int().positive(),
  padded_size: z.number().int().positive(),
  model: z.string(),
  seed: z.number().int(),
  data_seed: z.number().int(),
  files: z.array(
    z.strictObject({
      name: z.string(),
      rank: z.number().int().nonnegative(),
      start: z.number().int().nonnegative(),
      end: z.number().int().nonnegative(),
      bytes: z.number().int().nonnegative(),
      sha256: z.string().regex(/^[0-9a-f]{64}$/u),
    }),
  ),
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
  let covered = 0;
  for (const f of [...m.files].sort((a, b) => a.start - b.start)) {
    if (f.start !== covered) throw new InputFileError(path, f.name, `files leave [${covered}, ${f.start}) of the flat buffer uncovered`);
    covered = f.end;
    const file = join(dir, f.name);
    const size = existsSync(file) ? (await stat(file)).size : -1;
    if (size !== f.bytes) throw new InputFileError(file, '', size < 0 ? 'missing' : `is ${size} bytes, the manifest says ${f.bytes} (truncated or replaced)`);
    if ((await sha256File(file)) !== f.sha256) throw new InputFileError(file, '', 'sha256 differs from the manifest (altered)');
  }
  if (covered !== m.padded_size) throw new InputFileError(path, '', `files cover ${covered} of ${m.padded_size} elements`);
  return m;
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
