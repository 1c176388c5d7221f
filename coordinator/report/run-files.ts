import { join, resolve } from 'node:path';
import type { ResolvedRunConfig } from '../../shared/config/resolve-run-config.js';
import type { Logger } from '../../shared/log.js';
import { readRunRecord } from '../run-record.js';
import { EVENT_LOG, RunEventLog } from './event-log.js';
import { writeRunReport } from './write-report.js';

// What `start` and `coordinator` add to every run's output directory for people to look at:
// events.jsonl as the run goes, report.html when it ends (finished, failed or interrupted).

export function openRunEventLog(rc: ResolvedRunConfig): RunEventLog {
  const c = rc.config;
  const outputDir = resolve(c.output_dir);
  // A run that continues (its coordinator was restarted, or it resumes) keeps the events it had.
  const continuing = readRunRecord(outputDir, c.run_name ?? null)?.status === 'running' || (c.resume_from_checkpoint != null && c.resume_from_checkpoint !== false);
  return new RunEventLog(join(outputDir, EVENT_LOG), c.run_name ?? 'local', {
    model: c.model, global_batch_size: rc.globalBatchSize, learning_rate: c.learning_rate, lr_scheduler_type: c.lr_scheduler_type, seed: c.seed, output_dir: outputDir,
  }, continuing);
}

/** Writes OUTPUT_DIR/report.html; a report that cannot be written is logged, never fails the run. */
export async function writeReportAtEnd(rc: ResolvedRunConfig, log: Logger): Promise<void> {
  const outputDir = resolve(rc.config.output_dir);
  try {
    const path = await writeRunReport(outputDir);
    process.stderr.write(`report: ${path}\n`);
  } catch (err) {
    log.warn({ err, outputDir }, 'could not write report.html');
  }
}
