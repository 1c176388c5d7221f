import { appendFileSync, existsSync, mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { InputFileError } from '../../shared/errors.js';
import { EVENTS_VERSION, EvalEventSchema, LifecycleEventSchema, ProgressEventSchema, TERMINAL_EVENTS, type KpcoordEvent, type RunConfigSummary } from '../../shared/events/events-v1.js';
import { formatZodIssues } from '../../shared/zod-issues.js';
import { EventMapper } from '../nats/event-mapper.js';
import type { RunEvent } from '../run-events.js';

// OUTPUT_DIR/events.jsonl: the run's events as NATS would carry them (events-v1 schemas, one JSON
// object per line, `kind` + the event), written by the coordinator whether or not NATS is
// configured. report.html is drawn from it, so a run without NATS still gets its charts and a
// report can be rebuilt later from the output directory alone.

export const EVENT_LOG = 'events.jsonl';

export class RunEventLog {
  private readonly mapper: EventMapper;
  private seq = 0;
  private ended = false;

  /** `append`: a continued run (restarted coordinator, resume) keeps the events it had. */
  constructor(
    private readonly path: string,
    private readonly run: string,
    config: Omit<RunConfigSummary, 'world' | 'zero_stage' | 'total_steps'>,
    append: boolean,
  ) {
    this.mapper = new EventMapper(config);
    mkdirSync(dirname(path), { recursive: true });
    if (!append || !existsSync(path)) writeFileSync(path, '');
    else dropPartialLine(path);
  }

  /** A RunEvent listener like the progress bar. Synchronous: at most a few lines per step. */
  readonly onEvent = (e: RunEvent): void => {
    const out = this.mapper.map(e);
    if (!out) return;
    if (out.kind === 'lifecycle' && (TERMINAL_EVENTS as readonly string[]).includes(out.body.event)) {
      // A run ends once: a failure reported again on the way out (or after finishing) is not news.
      if (this.ended) return;
      this.ended = true;
    }
    const event = { v: EVENTS_VERSION, run: this.run, seq: this.seq++, time: new Date().toISOString(), ...out.body };
    appendFileSync(this.path, `${JSON.stringify({ kind: out.kind, ...event })}\n`);
  };


  fail(reason: string): void {
    this.onEvent({ type: 'failed', reason });
  }
}

/** Every event of an events.jsonl, validated; a bad line fails with file:line and the field. */
export function readEventLog(path: string): KpcoordEvent[] {
  const events: KpcoordEvent[] = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let json: { kind?: unknown };
    try {
      json = JSON.parse(line) as { kind?: unknown };
    } catch (err) {
      throw new InputFileError(path, String(i + 1), 'not JSON', { cause: err });
    }
    const { kind, ...event } = json;
    const schema = kind === 'progress' ? ProgressEventSchema : kind === 'eval' ? EvalEventSchema : kind === 'lifecycle' ? LifecycleEventSchema : null;
    if (!schema) throw new InputFileError(path, String(i + 1), `kind: expected progress, eval or lifecycle, got ${JSON.stringify(kind)}`);
    const r = schema.safeParse(event);
    if (!r.success) throw new InputFileError(path, String(i + 1), formatZodIssues(r.error));
    events.push({ kind, event: r.data } as KpcoordEvent);
  });
  return events;
}

/** A coordinator killed mid-write leaves a partial last line; the run that continues cuts it off. */
function dropPartialLine(path: string): void {
  const bytes = readFileSync(path);
  if (bytes.length === 0 || bytes[bytes.length - 1] === 0x0a) return;
  truncateSync(path, bytes.lastIndexOf(0x0a) + 1);
}
