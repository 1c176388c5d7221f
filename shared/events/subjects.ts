import { EventError } from '../errors.js';
import { EVENT_KINDS, EvalEventSchema, LifecycleEventSchema, ProgressEventSchema, type EventKind, type KpcoordEvent } from './events-v1.js';

// Subject names and the one parser of messages read back from NATS.

export function eventSubject(prefix: string, run: string, kind: EventKind): string {
  return `${prefix}.${run}.${kind}`;
}

/** All of a run's subjects (run = '*': every run's). */
export function runSubjects(prefix: string, run: string): string {
  return `${prefix}.${run}.*`;
}

/** The run name and kind of a subject, or null when the subject is not an event subject under the prefix. */
export function parseSubject(prefix: string, subject: string): { run: string; kind: EventKind } | null {
  if (!subject.startsWith(`${prefix}.`)) return null;
  const rest = subject.slice(prefix.length + 1).split('.');
  if (rest.length !== 2) return null;
  const [run, kind] = rest as [string, string];
  return (EVENT_KINDS as readonly string[]).includes(kind) ? { run, kind: kind as EventKind } : null;
}

/** Validates a message's JSON against its subject's schema; the error names the subject, sequence and field. */
export function parseEvent(prefix: string, subject: string, data: Uint8Array, where: string): KpcoordEvent {
  const s = parseSubject(prefix, subject);
  if (!s) throw new EventError(`${where}: ${subject} is not a kp-coord event subject under "${prefix}"`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(data));
  } catch (err) {
    throw new EventError(`${where} (${subject}): not JSON`, { cause: err });
  }
  const schema = s.kind === 'progress' ? ProgressEventSchema : s.kind === 'eval' ? EvalEventSchema : LifecycleEventSchema;
  const r = schema.safeParse(json);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new EventError(`${where} (${subject}): ${issues}`);
  }
  return { kind: s.kind, event: r.data } as KpcoordEvent;
}
