import type { EventKind } from '../../shared/events/events-v1.js';
import type { OutgoingEvent } from './event-mapper.js';

// What the publisher owes NATS, in order. Bounded: when NATS is away for long, the oldest progress
// events go first, then (only if the buffer holds nothing else) the oldest lifecycle/eval events;
// every drop is counted so it can be reported. Progress is throttled here: at most one per interval,
// the newest held back one sent before any later event, and a run's last step always sent.

export interface QueuedEvent {
  readonly seq: number;
  /** When the coordinator produced it (ISO 8601), not when NATS got it. */
  readonly time: string;
  readonly out: OutgoingEvent;
}

export type DropCounts = Record<EventKind, number>;

export class Outbox {
  private readonly queue: QueuedEvent[] = [];
  private nextSeq = 0;
  private lastProgressAt = Number.NEGATIVE_INFINITY;
  private heldProgress: { out: OutgoingEvent; time: string } | null = null;
  private unreported: DropCounts = { progress: 0, eval: 0, lifecycle: 0 };
  readonly dropped: DropCounts = { progress: 0, eval: 0, lifecycle: 0 };
  throttled = 0;

  constructor(
    private readonly limit: number,
    private readonly progressIntervalMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get size(): number {
    return this.queue.length;
  }

  push(out: OutgoingEvent, time: string = new Date().toISOString()): void {
    if (out.kind === 'progress') {
      const t = this.now();
      const last = out.body.step === out.body.total_steps;
      if (!last && t - this.lastProgressAt < this.progressIntervalMs) {
        if (this.heldProgress) this.throttled++;
        this.heldProgress = { out, time };
        return;
      }
      this.lastProgressAt = t;
      if (this.heldProgress) this.throttled++;
      this.heldProgress = null;
    } else if (this.heldProgress) {
      // Watchers see the latest step before an eval or lifecycle line.
      this.enqueue(this.heldProgress.out, this.heldProgress.time);
      this.heldProgress = null;
    }
    this.enqueue(out, time);
  }

  peek(): QueuedEvent | undefined {
    return this.queue[0];
  }

  /** The head was published. */
  shift(): void {
    this.queue.shift();
  }

  /** Drops since the last call (to publish as an events_dropped lifecycle event), and resets them. */
  takeUnreportedDrops(): DropCounts | null {
    const u = this.unreported;
    if (u.progress + u.eval + u.lifecycle === 0) return null;
    this.unreported = { progress: 0, eval: 0, lifecycle: 0 };
    return u;
  }

  private enqueue(out: OutgoingEvent, time: string): void {
    if (this.queue.length >= this.limit) {
      // Never drop the head: it may be in flight.
      const i = this.queue.findIndex((q, j) => j > 0 && q.out.kind === 'progress');
      const [gone] = this.queue.splice(i > 0 ? i : Math.min(1, this.queue.length - 1), 1);
      if (gone) {
        this.dropped[gone.out.kind]++;
        this.unreported[gone.out.kind]++;
      }
    }
    this.queue.push({ seq: this.nextSeq++, time, out });
  }
}
