import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { InputFileError } from '../../shared/errors.js';
import type { KpcoordEvent } from '../../shared/events/events-v1.js';
import { readJsonFile } from '../../shared/json-file.js';
import { parseInput } from '../../shared/zod-issues.js';
import { RUN_RECORD, readRunRecord } from '../run-record.js';
import { EVENT_LOG, readEventLog } from './event-log.js';

// What the run page (report.html and the dashboard) is drawn from, per run: its events (the
// events-v1 stream, from NATS or OUTPUT_DIR/events.jsonl), the parts of summary.json that events do
// not carry (bytes sent per step, peak RSS per rank), and a few decoded eval articles.

/** The page shows this many eval articles with their gold and generated keyphrases. */
export const PREDICTION_ROWS = 8;

/** The run's state as the page names it (run.json's words; "running" until it ends). */
export type RunStatus = 'running' | 'finished' | 'failed' | 'interrupted';

/** The fields of summary.json the page uses; the rest of the file is not the page's business. */
const ReportSummarySchema = z.object({
  run_id: z.string(),
  steps: z.number(),
  restarts: z.number(),
  wall_seconds: z.number(),
  world_size: z.number(),
  /** 0-based step index, as summary.json writes it. */
  train_loss: z.array(z.object({ step: z.number(), loss: z.number(), bytes_sent_per_worker: z.number(), seconds: z.number() })),
  worker_peak_rss_bytes: z.array(z.number()),
  best_step: z.number().nullable(),
  best_eval_loss: z.number().nullable(),
  stopped_early: z.boolean(),
  generate: z.object({ documents: z.number(), metrics: z.record(z.string(), z.number()) }).nullable(),
});
export type ReportSummary = z.output<typeof ReportSummarySchema>;

const PredictionSchema = z.object({ id: z.string(), label: z.string(), prediction: z.string(), source: z.string().optional() });
export type PredictionRow = z.output<typeof PredictionSchema>;

export interface RunPageData {
  readonly run: string;
  readonly status: RunStatus;
  readonly events: readonly KpcoordEvent[];
  readonly summary: ReportSummary | null;
  readonly predictions: readonly PredictionRow[];
}

/** Everything the page shows about the run in `runDir` (an output_dir), from its files alone. */
export function loadRunDir(runDir: string): RunPageData {
  const record = existsSync(join(runDir, RUN_RECORD)) ? readRunRecord(runDir, null) : null;
  const summary = readSummary(runDir);
  const eventsPath = join(runDir, EVENT_LOG);
  const events = existsSync(eventsPath) ? readEventLog(eventsPath) : [];
  if (!record && !summary && events.length === 0) throw new InputFileError(runDir, '', `no ${RUN_RECORD}, summary.json or ${EVENT_LOG}: not a kp-coord output_dir`);
  return {
    run: record?.run_id ?? summary?.run_id ?? events[0]?.event.run ?? 'run',
    status: record?.status ?? (summary ? 'finished' : 'running'),
    events,
    summary,
    predictions: readPredictions(runDir, PREDICTION_ROWS),
  };
}

export function readSummary(runDir: string): ReportSummary | null {
  const path = join(runDir, 'summary.json');
  return existsSync(path) ? parseInput(ReportSummarySchema, readJsonFile(path, 'run summary'), path, 'run summary') : null;
}

/** The first `limit` rows of eval_predictions.jsonl (predict_with_generate), or none. */
export function readPredictions(runDir: string, limit: number): PredictionRow[] {
  const path = join(runDir, 'eval_predictions.jsonl');
  if (!existsSync(path)) return [];
  const rows: PredictionRow[] = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  for (let i = 0; i < lines.length && rows.length < limit; i++) {
    if (lines[i]!.trim() === '') continue;
    let json: unknown;
    try {
      json = JSON.parse(lines[i]!);
    } catch (err) {
      throw new InputFileError(path, String(i + 1), 'not JSON', { cause: err });
    }
    rows.push(parseInput(PredictionSchema, json, `${path}:${i + 1}`, 'prediction row'));
  }
  return rows;
}
