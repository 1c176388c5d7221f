import { setTimeout as sleep } from 'node:timers/promises';
import { connect, DeliverPolicy, type NatsConnection } from 'nats';
import type { KpcoordEvent } from '../../shared/events/events-v1.js';
import { parseEvent } from '../../shared/events/subjects.js';
import type { Logger } from '../../shared/log.js';
import { eventStreamName } from '../nats/event-stream.js';
import { natsConnectionOptions, type NatsEndpoint } from '../nats/nats-connection.js';

// Every run's events from the JetStream stream, history first, then live, for as long as the
// dashboard runs. NATS going away is expected (a restart, a pod moving): the follower says so,
// connects again every `retryMs`, and continues after the last stream sequence it delivered, so
// nothing is shown twice or skipped. It does its own reconnecting (the connection is opened with
// reconnects off) because a consumer must be re-created at a known position after an outage.

export type FollowerState =
  | { readonly state: 'connecting' }
  | { readonly state: 'live' }
  /** Connected, but no run has published yet with this prefix (the stream does not exist). */
  | { readonly state: 'no-stream' }
  | { readonly state: 'unreachable'; readonly error: string };

export interface StreamFollowerOptions {
  readonly endpoint: NatsEndpoint;
  readonly prefix: string;
  readonly onEvent: (e: KpcoordEvent) => void;
  readonly onState: (s: FollowerState) => void;
  readonly log: Logger;
  readonly retryMs?: number;
}

export class StreamFollower {
  /** The stream sequence of the last message delivered (0: none yet). */
  private lastSeq = 0;
  private nc: NatsConnection | null = null;
  private stopped = false;
  private readonly running: Promise<void>;

  constructor(private readonly o: StreamFollowerOptions) {
    this.running = this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.nc?.close().catch(() => undefined);
    await this.running;
  }

  private async loop(): Promise<void> {
    const retryMs = this.o.retryMs ?? 500;
    let reported = '';
    const report = (s: FollowerState) => {
      const key = JSON.stringify(s);
      if (key === reported) return;
      reported = key;
      this.o.onState(s);
    };
    report({ state: 'connecting' });
    while (!this.stopped) {
      try {
        await this.followOnce(report);
      } catch (err) {
        if (!this.stopped) {
          const error = (err as Error).message;
          if (/stream not found/iu.test(error)) report({ state: 'no-stream' });
          else {
            if (!reported.includes('unreachable')) this.o.log.warn({ err: error }, 'NATS unreachable; reconnecting');
            report({ state: 'unreachable', error });
          }
        }
      } finally {
        const nc = this.nc;
        this.nc = null;
        await nc?.close().catch(() => undefined);
      }
      if (!this.stopped) await sleep(retryMs);
    }
  }

  private async followOnce(report: (s: FollowerState) => void): Promise<void> {
    const nc = await connect({ ...natsConnectionOptions(this.o.endpoint), timeout: 2000, maxReconnectAttempts: 0 });
    this.nc = nc;
    if (this.stopped) return;
    const stream = eventStreamName(this.o.prefix);
    await (await nc.jetstreamManager({ timeout: 2000 })).streams.info(stream);
    const consumer = await nc.jetstream().consumers.get(stream, {
      filterSubjects: `${this.o.prefix}.*.*`,
      ...(this.lastSeq > 0 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.lastSeq + 1 } : {}),
    });
    const messages = await consumer.consume();
    // A closed connection (the server went away; reconnects are off) ends the iteration below.
    void nc.closed().then(() => messages.stop());
    report({ state: 'live' });
    for await (const m of messages) {
      this.lastSeq = m.seq;
      let e: KpcoordEvent;
      try {
        e = parseEvent(this.o.prefix, m.subject, m.data, `stream ${stream} message ${m.seq}`);
      } catch (err) {
        // A viewer shows what it can: one bad message is logged and skipped, not fatal.
        this.o.log.warn({ err: (err as Error).message }, 'skipped an event that does not parse');
        continue;
      }
      this.o.onEvent(e);
    }
    throw new Error('connection to NATS closed');
  }
}
