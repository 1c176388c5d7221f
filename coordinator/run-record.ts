import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { readJsonFile } from '../shared/json-file.js';
import { writeBytesAtomically } from '../shared/weights/atomic-file.js';
import { parseInput } from '../shared/zod-issues.js';

// OUTPUT_DIR/run.json: which run the directory holds and whether its coordinator finished it.
// A coordinator that finds "running" there was restarted after a crash (or its pod moved) and
// continues that run from the newest valid checkpoint instead of starting over.

export const RUN_RECORD = 'run.json';

const RunRecordSchema = z.strictObject({
  run_id: z.string().min(1),
  /** 'interrupted': stopped on purpose (Ctrl-C); only 'running' is continued automatically. */
  status: z.enum(['running', 'finished', 'failed', 'interrupted']),
  /** The coordinator process that wrote it (for people reading the file). */
  pid: z.number().int().nonnegative(),
  updated: z.string(),
});

export type RunRecord = z.infer<typeof RunRecordSchema>;

export async function writeRunRecord(outputDir: string, record: RunRecord): Promise<void> {
  await mkdir(outputDir, { recursive: true });
  await writeBytesAtomically(join(outputDir, RUN_RECORD), `${JSON.stringify(RunRecordSchema.parse(record), null, 2)}\n`);
}

/** The run recorded in `outputDir` (of this name, when one is configured), or null. */
export function readRunRecord(outputDir: string, runName: string | null): RunRecord | null {
  const path = join(outputDir, RUN_RECORD);
  if (!existsSync(path)) return null;
  const record = parseInput(RunRecordSchema, readJsonFile(path, 'run record'), path, 'run record');
  if (runName !== null && record.run_id !== runName) return null;
  return record;
}

/** Ctrl-C on `kp-coord start`: the run was stopped on purpose, so the next start begins afresh. */
export function markRunInterrupted(outputDir: string): void {
  const path = join(outputDir, RUN_RECORD);
  if (!existsSync(path)) return;
  const record = parseInput(RunRecordSchema, readJsonFile(path, 'run record'), path, 'run record');
  if (record.status !== 'running') return;
  // Synchronous: this runs on the way out of a signal handler.
  writeFileSync(`${path}.tmp`, `${JSON.stringify({ ...record, status: 'interrupted', updated: new Date().toISOString() }, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}
