import { randomInt } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { hasToken } from '../shared/auth.js';
import { KpCoordError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { HealthStatus } from '../shared/health/health-status.js';
import {
  CoordinatorService, type Command, type CoordinatorServer, type Peer, type WorkerReport,
} from '../proto/gen/control/control.js';
import { ReportBarrier } from './report-barrier.js';
import { ScalarAllReduce } from './scalar-all-reduce.js';
import { WorkerLostError } from './worker-lost-error.js';

// The coordinator's gRPC service: membership, one command stream per worker, scalar all-reduce,
// report barriers and heartbeats. Membership is per *generation* (see the note in control.proto):
// `open` starts one, workers register into it, `gather` waits for them, `seal` fixes the world;
// any lost worker ends it (`lost` rejects) and the driver decides what comes next. Nothing here
// decides what a run does.

export interface Member {
  readonly rank: number;
  readonly host: string;
  readonly dataPort: number;
  readonly pid: number;
  readonly workerId: string;
}

export interface ControlServerOptions {
  readonly token: string;
  readonly runId: string;
  readonly log: Logger;
  /** Workers beat this often, from registration on. */
  readonly heartbeatIntervalMs: number;
  /** A registered worker silent this long is lost (it may be stopped, or its host gone). */
  readonly heartbeatTimeoutMs: number;
}

interface Generation {
  readonly id: number;
  readonly capacity: number;
  readonly members: Member[];
  readonly streams: Map<number, grpc.ServerWritableStream<unknown, Command>>;
  readonly lastBeat: Map<number, number>;
  /** Rejects with WorkerLostError at the first loss; the generation is over then. */
  readonly lost: Promise<never>;
  readonly loseWith: (e: WorkerLostError) => void;
  /** Wakes `gather` when membership changes. */
  changed: () => void;
  sealed: { readonly scalars: ScalarAllReduce; readonly barrier: ReportBarrier } | null;
  ended: boolean;
  /** Why it ended: what a send to it throws, so the driver sees a lost worker, not a missing stream. */
  endedWith: WorkerLostError | null;
}

export class ControlServer {
  /**
   * grpc.health.v1 on the control port: NOT_SERVING while the run is being prepared (data cache,
   * plan), SERVING once a generation is open.
   */
  readonly health = new HealthStatus();
  private readonly server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
  // Random first id: a worker left over from a previous coordinator process never matches.
  private nextId = randomInt(1, 2 ** 30);
  private gen: Generation | null = null;
  private closing = false;
  private closed: Promise<void> | null = null;
  private readonly watchdog: NodeJS.Timeout;

  constructor(private readonly o: ControlServerOptions) {
    this.server.addService(CoordinatorService, this.handlers());
    this.health.addTo(this.server);
    this.watchdog = setInterval(() => this.checkHeartbeats(), Math.max(50, Math.floor(o.heartbeatTimeoutMs / 4)));
    this.watchdog.unref();
  }

  /** Bind `host:port` (port 0 picks one); returns the bound port. */
  listen(address: string, credentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
    });
  }

  /** Accept registrations for a new generation of up to `capacity` workers. */
  open(capacity: number): void {
    if (this.gen && !this.gen.ended) throw new KpCoordError(`generation ${this.gen.id} is still running`);
    let loseWith!: (e: WorkerLostError) => void;
    const lost = new Promise<never>((_, reject) => (loseWith = reject));
    lost.catch(() => undefined);
    this.gen = { id: this.nextId++, capacity, members: [], streams: new Map(), lastBeat: new Map(), lost, loseWith, changed: () => undefined, sealed: null, ended: false, endedWith: null };
    this.health.setReady(true);
  }

  get generation(): number {
    return this.current().id;
  }

  /** Rejects with WorkerLostError when a worker of the current generation is lost. */
  get lost(): Promise<never> {
    return this.current().lost;
  }

  /**
   * Members with an open command stream, once `want` of them are there; or, `graceMs` after the
   * call, whatever is there if at least one (null: wait for all `want`).
   */
  async gather(want: number, graceMs: number | null): Promise<readonly Member[]> {
    const g = this.current();
    const deadline = graceMs === null ? Infinity : Date.now() + graceMs;
    for (;;) {
      if (g.ended) throw g.endedWith!;
      const ready = g.members.filter((m) => g.streams.has(m.rank));
      if (ready.length >= want) return ready;
      if (Date.now() >= deadline && ready.length > 0) {
        // Ranks are registration order: one registered without a stream would be sealed in.
        const silent = g.members.filter((m) => !g.streams.has(m.rank));
        if (silent.length === 0) return ready;
        this.lose(g, silent, 'disconnected', 'registered but never opened its command stream');
        throw g.endedWith!;
      }
      const woken = new Promise<void>((r) => (g.changed = r));
      const wait = Number.isFinite(deadline) ? Math.max(10, deadline - Date.now()) : 60_000;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([woken, g.lost, new Promise<void>((r) => (timer = setTimeout(r, wait)))]).finally(() => clearTimeout(timer));
    }
  }

  /**
   * Fix this generation's world at `world` members (ranks 0..world-1); later registrations are
   * refused, and members beyond `world` are told to shut down. Collectives can start now.
   */
  seal(world: number): readonly Member[] {
    const g = this.current();
    if (g.members.length < world) throw new KpCoordError(`cannot seal generation ${g.id} at ${world}: only ${g.members.length} members`);
    for (const extra of g.members.slice(world)) {
      this.o.log.info({ rank: extra.rank, workerId: extra.workerId }, 'worker not needed in this generation');
      const stream = g.streams.get(extra.rank);
      g.streams.delete(extra.rank);
      g.lastBeat.delete(extra.rank);
      stream?.write({ kind: { $case: 'shutdown', value: { reason: `not needed: the run continues with ${world} workers` } } });
      stream?.end();
    }
    g.members.length = world;
    g.sealed = { scalars: new ScalarAllReduce(world), barrier: new ReportBarrier(world) };
    return g.members;
  }

  get barrier(): ReportBarrier {
    return this.sealedState().barrier;
  }

  peers(): Peer[] {
    return this.current().members.map((m) => ({ rank: m.rank, host: m.host, dataPort: m.dataPort }));
  }

  send(rank: number, command: Command): void {
    const g = this.current();
    if (g.ended) throw g.endedWith!;
    const stream = g.streams.get(rank);
    if (!stream) throw new KpCoordError(`no command stream for rank ${rank}`);
    stream.write(command);
  }

  broadcast(command: Command): void {
    for (const m of this.current().members) this.send(m.rank, command);
  }

  /** End the current generation: every worker drops what it is doing and registers again. */
  abort(reason: string): void {
    const g = this.gen;
    if (!g) return;
    // The generation may have ended already (a loss ends it); its streams are told either way.
    this.endGeneration(g, new WorkerLostError([], 'aborted', reason));
    for (const stream of g.streams.values()) {
      stream.write({ kind: { $case: 'abort', value: { reason } } });
      stream.end();
    }
    g.streams.clear();
  }

  /** Tell every member of the current generation to exit (the run is over or failed). */
  shutdown(reason: string): void {
    const g = this.gen;
    if (!g) return;
    for (const stream of g.streams.values()) {
      stream.write({ kind: { $case: 'shutdown', value: { reason } } });
      stream.end();
    }
    g.streams.clear();
    g.ended = true;
  }

  /** Stop serving; a pending `gather` rejects. Idempotent. */
  close(): Promise<void> {
    this.closed ??= this.shutdownServer();
    return this.closed;
  }

  private async shutdownServer(): Promise<void> {
    if (this.gen) this.endGeneration(this.gen, new WorkerLostError([], 'aborted', 'the coordinator is closing'));
    this.closing = true;
    clearInterval(this.watchdog);
    this.health.shutdown();
    if (this.gen) for (const s of this.gen.streams.values()) s.end();
    // A worker that does not hang up (stopped, or its host gone) must not hold the exit.
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 5000);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }

  private current(): Generation {
    if (!this.gen) throw new KpCoordError('no generation is open');
    return this.gen;
  }

  private sealedState(): NonNullable<Generation['sealed']> {
    const s = this.current().sealed;
    if (!s) throw new KpCoordError(`generation ${this.current().id} is not sealed`);
    return s;
  }

  private endGeneration(g: Generation, error: WorkerLostError): void {
    if (g.ended) return;
    g.ended = true;
    g.endedWith = error;
    g.sealed?.scalars.fail(error);
    g.sealed?.barrier.fail(error);
    g.loseWith(error);
    g.changed();
  }

  /** A member of the live generation, or null (with the call answered) when the call is stale. */
  private memberOf(generation: number, rank: number): Generation | null {
    const g = this.gen;
    if (!g || g.ended || g.id !== generation || !g.members[rank]) return null;
    return g;
  }

  private authorised<Req, Res>(call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>, what: string): boolean {
    if (hasToken(call.metadata, this.o.token)) return true;
    this.o.log.warn({ peer: call.getPeer(), call: what }, 'refused a call without the worker token');
    cb({ code: grpc.status.UNAUTHENTICATED, details: 'missing or wrong worker token' });
    return false;
  }

  private handlers(): CoordinatorServer {
    const stale = (generation: number) => ({ code: grpc.status.ABORTED, details: `generation ${generation} has ended; register again` });
    return {
      register: (call, cb) => {
        if (!this.authorised(call, cb, 'Register')) return;
        const r = call.request;
        const g = this.gen;
        if (!g || g.ended) {
          cb({ code: grpc.status.UNAVAILABLE, details: 'the coordinator is still preparing the run; retry' });
          return;
        }
        if (g.sealed || g.members.length >= g.capacity) {
          cb({ code: grpc.status.RESOURCE_EXHAUSTED, details: `the run already has its ${g.members.length} workers` });
          return;
        }
        const member: Member = { rank: g.members.length, host: r.host, dataPort: r.dataPort, pid: r.pid, workerId: r.workerId };
        g.members.push(member);
        g.lastBeat.set(member.rank, Date.now());
        this.o.log.info({ ...member, generation: g.id }, 'worker joined');
        cb(null, { rank: member.rank, world: g.capacity, runId: this.o.runId, generation: g.id, heartbeatIntervalMs: this.o.heartbeatIntervalMs, heartbeatTimeoutMs: this.o.heartbeatTimeoutMs });
      },
      commands: (call) => {
        if (!hasToken(call.metadata, this.o.token)) {
          this.o.log.warn({ peer: call.getPeer(), call: 'Commands' }, 'refused a call without the worker token');
          call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'missing or wrong worker token' });
          return;
        }
        const { rank, generation } = call.request;
        const g = this.memberOf(generation, rank);
        if (!g || g.streams.has(rank)) {
          call.emit('error', { code: grpc.status.FAILED_PRECONDITION, details: `rank ${rank} of generation ${generation} is not registered or already connected` });
          return;
        }
        g.streams.set(rank, call);
        call.on('cancelled', () => this.workerGone(g, rank, 'its command stream was cancelled'));
        call.on('close', () => this.workerGone(g, rank, 'its command stream closed'));
        g.changed();
      },
      allReduce: (call, cb) => {
        if (!this.authorised(call, cb, 'AllReduce')) return;
        const { rank, key, values, generation } = call.request;
        const g = this.memberOf(generation, rank);
        if (!g?.sealed) return cb(stale(generation));
        g.sealed.scalars.contribute(rank, key, values).then(
          (sum) => cb(null, { values: sum }),
          (e: Error) => cb({ code: grpc.status.ABORTED, details: e.message }),
        );
      },
      report: (call, cb) => {
        if (!this.authorised(call, cb, 'Report')) return;
        const report = call.request as WorkerReport;
        const g = this.memberOf(report.generation, report.rank);
        if (!g?.sealed) return cb(stale(report.generation));
        g.sealed.barrier.add(report);
        cb(null, {});
      },
      heartbeat: (call, cb) => {
        if (!this.authorised(call, cb, 'Heartbeat')) return;
        const { rank, generation } = call.request;
        const g = this.memberOf(generation, rank);
        if (!g) return cb(stale(generation));
        g.lastBeat.set(rank, Date.now());
        cb(null, {});
      },
    };
  }

  private checkHeartbeats(): void {
    const g = this.gen;
    if (!g || g.ended || this.closing) return;
    const now = Date.now();
    const silentMs = (m: Member) => now - (g.lastBeat.get(m.rank) ?? now);
    // All of them at once: local mode must stop every stopped process, not only the first.
    const silent = g.members.filter((m) => silentMs(m) > this.o.heartbeatTimeoutMs);
    if (silent.length > 0) this.lose(g, silent, 'heartbeat', `no heartbeat for ${silentMs(silent[0]!)} ms (timeout ${this.o.heartbeatTimeoutMs} ms)`);
  }

  private workerGone(g: Generation, rank: number, why: string): void {
    if (!g.streams.has(rank)) return;
    g.streams.delete(rank);
    if (this.closing || g.ended) return;
    this.lose(g, [g.members[rank]!], 'disconnected', why);
  }

  private lose(g: Generation, members: readonly Member[], kind: 'disconnected' | 'heartbeat', why: string): void {
    const who = members.map((m) => `worker rank ${m.rank} (${m.workerId})`).join(', ');
    const error = new WorkerLostError(members, kind, `${who} lost: ${why}`);
    for (const m of members) this.o.log.error({ rank: m.rank, workerId: m.workerId, generation: g.id, reason: why }, 'worker lost');
    this.endGeneration(g, error);
  }
}
