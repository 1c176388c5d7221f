import { resolve } from 'node:path';
import { listCheckpoints, readVerifiedManifest, type CheckpointManifest } from '../shared/checkpoint/checkpoint-manifest.js';
import type { Logger } from '../shared/log.js';
import type { RunEventListener } from './run-events.js';

export interface ResumePoint {
  readonly dir: string;
  readonly manifest: CheckpointManifest;
}

/**
 * The checkpoint to continue from: an explicit directory (verified, or an error), or the newest
 * valid one in output_dir ('latest' / true). A checkpoint whose files fail their size or checksum
 * is reported and the previous one used; none valid means starting from the beginning.
 */
export async function findResumePoint(spec: string | boolean | null, outputDir: string, log: Logger, emit: RunEventListener): Promise<ResumePoint | null> {
  if (spec === null || spec === false) return null;
  if (typeof spec === 'string' && spec !== 'latest') return { dir: resolve(spec), manifest: await readVerifiedManifest(resolve(spec)) };
  for (const c of listCheckpoints(outputDir)) {
    try {
      return { dir: c.dir, manifest: await readVerifiedManifest(c.dir) };
    } catch (err) {
      log.warn({ dir: c.dir, err: (err as Error).message }, 'checkpoint is corrupt; trying the previous one');
      emit({ type: 'note', text: `checkpoint ${c.dir} is corrupt (${(err as Error).message}); using the previous one` });
    }
  }
  emit({ type: 'note', text: `no valid checkpoint in ${outputDir}: starting from the beginning` });
  return null;
}
