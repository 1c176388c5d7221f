import { connect, type JetStreamClient, type JetStreamManager, type NatsConnection } from 'nats';
import { EventError } from '../../shared/errors.js';
import type { KpcoordEvent } from '../../shared/events/events-v1.js';
import { parseEvent, runSubjects } from '../../shared/events/subjects.js';
import { eventStreamName } from './event-stream.js';
import type { NatsEndpoint } from './nats-connection.js';
import { natsConnectionOptions } from './nats-connection.js';
import { probeNatsServer } from './nats-probe.js';

// Reads runs' events back from the JetStream stream: the list of runs, one run's history, and its
// live tail. Every message is validated (parseEvent); a bad one stops the read with its sequence.

const RUN_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/u;

export class EventReader {
  private constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
    private readonly prefix: string,
    private readonly url: string,
  ) {}

  static async open(ep: NatsEndpoint, prefix: string): Promise<EventReader> {
    let nc: NatsConnection;
    await probeNatsServer(ep.url, 5000);
    try {
      nc = await connect({ ...natsConnectionOptions(ep), timeout: 5000, maxReconnectAttempts: 0 });
    } catch (err) {
      if (err instanceof EventError) throw err;
      throw new EventError(`cannot reach NATS at ${ep.url}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const jsm = await nc.jetstreamManager({ timeout: 5000 });
      const reader = new EventReader(nc, jsm, nc.jetstream(), prefix, ep.url);
      await reader.streamSubjects(`${prefix}.*.lifecycle`);
      return reader;
    } catch (err) {
      await nc.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.nc.close();
  }

  /** Runs with events in the stream, by name. */
  async listRuns(): Promise<string[]> {
    const subjects = await this.streamSubjects(`${this.prefix}.*.*`);
    return [...new Set(subjects.map((s) => s.slice(this.prefix.length + 1).split('.')[0]!))].sort();
  }

  /**
   * Delivers the run's events from the first, in order; `caughtUp` runs once, after the last event
   * of the history. Ends when a callback returns true, or after the history unless following.
   */
  async read(run: string, o: { follow: boolean; onEvent: (e: KpcoordEvent) => boolean | void; caughtUp?: () => boolean | void }): Promise<void> {
    if (!RUN_NAME.test(run)) throw new EventError(`run "${run}": expected 1-64 letters, digits, _ or - (a run_name)`);
    if ((await this.streamSubjects(runSubjects(this.prefix, run))).length === 0) {
      const runs = await this.listRuns();
      throw new EventError(`run "${run}" has no events on NATS at ${this.url}; runs there: ${runs.length > 0 ? runs.join(', ') : 'none'}`);
    }
    // One filter subject (a list needs nats-server 2.10; Debian ships 2.9).
    const consumer = await this.js.consumers.get(eventStreamName(this.prefix), { filterSubjects: runSubjects(this.prefix, run) });
    const messages = await consumer.consume();
    let live = false;
    try {
      for await (const m of messages) {
        const e = parseEvent(this.prefix, m.subject, m.data, `stream ${eventStreamName(this.prefix)} message ${m.seq}`);
        if (o.onEvent(e) === true) break;
        if (!live && m.info.pending === 0) {
          live = true;
          if (o.caughtUp?.() === true || !o.follow) break;
        }
      }
    } finally {
      messages.stop();
    }
  }

  private async streamSubjects(filter: string): Promise<string[]> {
    try {
      const info = await this.jsm.streams.info(eventStreamName(this.prefix), { subjects_filter: filter });
      return Object.keys(info.state.subjects ?? {});
    } catch (err) {
      if (/stream not found/iu.test((err as Error).message)) {
        throw new EventError(`no kp-coord events on NATS at ${this.url}: stream ${eventStreamName(this.prefix)} does not exist (nothing published with prefix "${this.prefix}")`, { cause: err });
      }
      if (/no responders|503/iu.test((err as Error).message)) throw new EventError(`NATS at ${this.url} has no JetStream (start nats-server with -js)`, { cause: err });
      throw new EventError(`reading NATS at ${this.url}: ${(err as Error).message}`, { cause: err });
    }
  }
}
