import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type ConnectionOptions, type JetStreamClient, type NatsConnection } from 'nats';
import { EVENTS_VERSION, TERMINAL_EVENTS, type RunConfigSummary } from '../../shared/events/events-v1.js';
import { eventSubject } from '../../shared/events/subjects.js';
import type { Logger } from '../../shared/log.js';
import type { RunEvent } from '../run-events.js';
import { EventMapper } from './event-mapper.js';
import { ensureEventStream } from './event-stream.js';
import { Outbox, type DropCounts } from './outbox.js';
import { probeNatsServer } from './nats-probe.js';

// One run's events on NATS. `onEvent` is a RunEvent listener like the progress bar: it never blocks
// and never throws, so training goes on whatever NATS does. A single pump publishes the outbox in
// order to JetStream and waits for each ack; when NATS is unreachable it logs once, keeps
// retrying (the client reconnects by itself) and, once back, publishes what is owed. Each message
// carries a JetStream message id (run:seq), so a retry after a lost ack is stored once.

export interface NatsPublisherOptions {
  readonly connection: ConnectionOptions;
  readonly prefix: string;
  readonly run: string;
  readonly progressIntervalMs: number;
  /** Events buffered while NATS is away before the oldest are dropped (progress first). */
  readonly bufferLimit?: number;
  readonly config: Omit<RunConfigSummary, 'world' | 'zero_stage' | 'total_steps'>;
  readonly log: Logger;
}

export interface PublisherReport {
  readonly published: number;
  readonly throttled: number;
  readonly dropped: DropCounts;
  /** Still buffered when close() gave up waiting. */
  readonly unsent: number;
}

const PUBLISH_TIMEOUT_MS = 2000;
const RETRY_MS = 250;

export class NatsPublisher {
  private readonly outbox: Outbox;
  private readonly mapper: EventMapper;
  private readonly log: Logger;
  private conn: { nc: NatsConnection; js: JetStreamClient } | null = null;
  private streamReady = false;
  private unreachable = false;
  private closing = false;
  /** close() stopped waiting for NATS: the pump ends with events unsent. */
  private abandoned = false;
  private terminalSent = false;
  private published = 0;
  private wake: () => void = () => undefined;
  private readonly pumping: Promise<void>;

  constructor(private readonly o: NatsPublisherOptions) {
    this.outbox = new Outbox(Math.max(2, o.bufferLimit ?? 10_000), o.progressIntervalMs);
    this.mapper = new EventMapper(o.config);
    this.log = o.log.child({ nats: o.connection.servers });
    this.pumping = this.pump();
  }

  readonly onEvent = (e: RunEvent): void => {
    const out = this.mapper.map(e);
    if (!out) return;
    if (out.kind === 'lifecycle' && (TERMINAL_EVENTS as readonly string[]).includes(out.body.event)) {
      if (this.terminalSent) return;
      this.terminalSent = true;
    }
    this.outbox.push(out);
    this.wake();
  };

  /** Publishes `failed` unless the run already ended (a failure outside runCoordinator, e.g. a worker process died). */
  fail(reason: string): void {
    this.onEvent({ type: 'failed', reason });
  }

  /** Publishes `interrupted` (Ctrl-C) unless the run already ended: what run.json says, not `failed`. */
  interrupt(reason: string): void {
    this.onEvent({ type: 'interrupted', reason });
  }

  /** Publishes what is owed (waiting at most `timeoutMs` for NATS), then closes the connection. */
  async close(timeoutMs = 10_000): Promise<PublisherReport> {
    this.closing = true;
    this.wake();
    const giveUp = setTimeout(() => {
      this.abandoned = true;
      this.wake();
    }, timeoutMs);
    await this.pumping;
    clearTimeout(giveUp);
    await this.conn?.nc.close().catch(() => undefined);
    const report: PublisherReport = { published: this.published, throttled: this.outbox.throttled, dropped: { ...this.outbox.dropped }, unsent: this.outbox.size };
    const lost = report.unsent + report.dropped.progress + report.dropped.eval + report.dropped.lifecycle;
    if (lost > 0) this.log.warn(report, 'NATS: some events were not published');
    else this.log.info(report, 'NATS: all events published');
    return report;
  }

  private async pump(): Promise<void> {
    while (!this.abandoned) {
      const head = this.outbox.peek();
      if (!head) {
        if (this.closing) return;
        await new Promise<void>((r) => (this.wake = r));
        continue;
      }
      try {
        const js = await this.ready();
        const { out, seq, time } = head;
        const body = { v: EVENTS_VERSION, run: this.o.run, seq, time, ...out.body };
        await js.publish(eventSubject(this.o.prefix, this.o.run, out.kind), JSON.stringify(body), { msgID: `${this.o.run}:${seq}`, timeout: PUBLISH_TIMEOUT_MS });
        this.outbox.shift();
        this.published++;
        if (this.unreachable) {
          this.unreachable = false;
          this.log.warn({ owed: this.outbox.size + 1, dropped: this.outbox.dropped }, 'NATS reachable again: publishing the buffered events');
        }
        const drops = this.outbox.takeUnreportedDrops();
        if (drops) this.outbox.push({ kind: 'lifecycle', body: { event: 'events_dropped', ...drops } });
      } catch (err) {
        this.streamReady = false;
        if (!this.unreachable) {
          this.unreachable = true;
          this.log.warn({ err: (err as Error).message, buffered: this.outbox.size }, 'NATS unreachable: training continues; events are buffered and sent when it is back');
        }
        await this.pause(RETRY_MS);
      }
    }
  }

  /** A connection with the stream in place; the first connect is retried here, later reconnects by the client. */
  private async ready(): Promise<JetStreamClient> {
    if (!this.conn || this.conn.nc.isClosed()) {
      // Each connect that times out against a non-NATS service would leave a socket open.
      await probeNatsServer(String(this.o.connection.servers), PUBLISH_TIMEOUT_MS);
      const nc = await connect({ ...this.o.connection, maxReconnectAttempts: -1, reconnectTimeWait: 500, reconnectJitter: 100 });
      this.conn = { nc, js: nc.jetstream({ timeout: PUBLISH_TIMEOUT_MS }) };
      this.log.info('NATS connected');
    }
    if (!this.streamReady) {
      await ensureEventStream(await this.conn.nc.jetstreamManager({ timeout: PUBLISH_TIMEOUT_MS }), this.o.prefix);
      this.streamReady = true;
    }
    return this.conn.js;
  }

  private async pause(ms: number): Promise<void> {
    await new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      this.wake = () => {
        if (this.abandoned) {
          clearTimeout(t);
          r();
        }
      };
    });
  }
}
