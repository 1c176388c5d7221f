import { DiscardPolicy, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from 'nats';

// The JetStream stream that keeps every run's events, so `kp-coord status` can rebuild a run's state
// from history. Limits keep it bounded: old messages go first (by age, per subject and in total).

const NANOS_PER_SECOND = 1_000_000_000;

/** KPCOORD_EVENTS for the default prefix "kpcoord" (stream names cannot contain '.'). */
export function eventStreamName(prefix: string): string {
  return `${prefix.replace(/[.-]/gu, '_').toUpperCase()}_EVENTS`;
}

export function eventStreamConfig(prefix: string): Partial<StreamConfig> & { name: string } {
  return {
    name: eventStreamName(prefix),
    subjects: [`${prefix}.*.*`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    // A run's lifecycle subject holds a few dozen messages; progress is throttled, so 10k per
    // subject keeps hours of history for one run while a long run cannot crowd out the others.
    max_msgs_per_subject: 10_000,
    max_bytes: 256 * 1024 * 1024,
    max_age: 30 * 24 * 3600 * NANOS_PER_SECOND,
    // Publishes carry a message id; a retry after a lost ack within this window is stored once.
    duplicate_window: 120 * NANOS_PER_SECOND,
  };
}

/** Creates the stream if absent; an existing stream (maybe with an operator's own limits) is left as is. */
export async function ensureEventStream(jsm: JetStreamManager, prefix: string): Promise<void> {
  const name = eventStreamName(prefix);
  try {
    await jsm.streams.info(name);
  } catch (err) {
    if (!/stream not found/iu.test((err as Error).message)) throw err;
    await jsm.streams.add(eventStreamConfig(prefix));
  }
}
