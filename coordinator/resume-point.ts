import { resolve } from 'node:path';
import { checkpointDirs, readVerifiedManifest, type CheckpointManifest } from '../shared/checkpoint/checkpoint-manifest.js';
import { KpCoordError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { RunEventListener } from './run-events.js';

export interface ResumePoint {
  readonly dir: string;
  readonly manifest: CheckpointManifest;
}

/** Resuming was asked for, checkpoints exist, and none of them is valid: nothing is started or overwritten. */
export class NoValidCheckpointError extends KpCoordError {}

/**
 * The checkpoint to continue from: an explicit directory (verified, or an error), or the newest
 * valid one in output_dir ('latest' / true). A checkpoint whose files fail their size or checksum
 * is reported and the previous one used; a directory without a manifest (a save that never
 * finished, or a deleted manifest) is reported and skipped. No checkpoint at all means starting
 * from the beginning; checkpoints that are all corrupt are an error (like HF Trainer), because
 * starting over would silently overwrite them.
 */
export async function findResumePoint(spec: string | boolean | null, outputDir: string, log: Logger, emit: RunEventListener): Promise<ResumePoint | null> {
  if (spec === null || spec === false) return null;
  if (typeof spec === 'string' && spec !== 'latest') return { dir: resolve(spec), manifest: await readVerifiedManifest(resolve(spec)) };
  const corrupt: string[] = [];
  for (const c of checkpointDirs(outputDir)) {
    if (!c.hasManifest) {
      log.warn({ dir: c.dir }, 'checkpoint has no manifest; skipped');
      emit({ type: 'note', text: `checkpoint ${c.dir} has no manifest.json (its save never finished, or the manifest was deleted); skipped` });
      continue;
    }
    try {
      return { dir: c.dir, manifest: await readVerifiedManifest(c.dir) };
    } catch (err) {
      corrupt.push(`${c.dir}: ${(err as Error).message}`);
      log.warn({ dir: c.dir, err: (err as Error).message }, 'checkpoint is corrupt; trying the previous one');
      emit({ type: 'note', text: `checkpoint ${c.dir} is corrupt (${(err as Error).message}); using the previous one` });
    }
  }
  if (corrupt.length > 0) {
    throw new NoValidCheckpointError(
      `no valid checkpoint to resume from in ${outputDir}: ${corrupt.join('; ')}. Nothing was started or overwritten; ` +
        'repair or remove them, name one with --resume DIR, or start afresh with --set resume_from_checkpoint=false',
    );
  }
  emit({ type: 'note', text: `no checkpoint in ${outputDir}: starting from the beginning` });
  return null;
}
