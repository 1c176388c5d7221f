import { randomInt } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { hasToken } from '../shared/auth.js';
import { KpCoordError } from '../shared/errors.js';
import { RefusalLog } from '../shared/refusal-log.js';
import { PLAINTEXT, serverCredentials, type TransportSecurity } from '../shared/tls/transport-security.js';
import type { Logger } from '../shared/log.js';
import { HealthStatus } from '../shared/health/health-status.js';
import {
  CoordinatorService, type Command, type CoordinatorServer, type Peer, type WorkerReport,
} from '../proto/gen/control/control.js';
import { ReportBarrier } from './report-barrier.js';
import { ScalarAllReduce } from './scalar-all-reduce.js';
import { WorkerLostError } from './worker-lost-error.js';

// The coordinator's gRPC service: membership, one command stream per worker, scalar all-reduce,
// report barriers and heartbeats. Membership is per *round* (see the note in control.proto):
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
  /** mTLS or plaintext for the control port (and the health service on it); default plaintext. */
  readonly security?: TransportSecurity;
}

/**
 * Where a round stands, as one value (like FSDP2's TrainingState): it gathers members, is
 * sealed with its world's collectives, and ends with the error that ended it. Only `advance`
 * changes it, and only forwards (gathering -> sealed -> ended, or gathering -> ended), so a state
 * such as "ended without a reason" or "ended with live collectives" cannot be written.
 */
export type RoundState =
  | { readonly phase: 'gathering' }
  | { readonly phase: 'sealed'; readonly scalars: ScalarAllReduce; readonly barrier: ReportBarrier }
  /** `error` is what a later send or gather throws, so the driver sees why, not a missing stream. */
  | { readonly phase: 'ended'; readonly error: WorkerLostError };

const NEXT_PHASES: Record<RoundState['phase'], readonly RoundState['phase'][]> = {
  gathering: ['sealed', 'ended'],
  sealed: ['ended'],
  ended: [],
};

interface Round {
  readonly id: number;
  readonly capacity: number;
  readonly members: Member[];
  readonly streams: Map<number, grpc.ServerWritableStream<unknown, Command>>;
  readonly lastBeat: Map<number, number>;
  /** Rejects with WorkerLostError at the first loss; the round is over then. */
  readonly lost: Promise<never>;
  readonly loseWith: (e: WorkerLostError) => void;
  /** Wakes `gather` when membership changes. */
  changed: () => void;
  state: RoundState;
}

export class ControlServer {
  /**
   * grpc.health.v1 on the control port: NOT_SERVING while the run is being prepared (data cache,
   * plan), SERVING once a round is open.
   */
  readonly health = new HealthStatus();
  private readonly server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
  // Random first id: a worker left over from a previous coordinator process never matches.
  private nextId = randomInt(1, 2 ** 30);
  private gen: Round | null = null;
  private closing = false;
  private closed: Promise<void> | null = null;
  private readonly watchdog: NodeJS.Timeout;
  private readonly refusals: RefusalLog;

  constructor(private readonly o: ControlServerOptions) {
    this.refusals = new RefusalLog(o.log, 'refused a call without the worker token');
    this.server.addService(CoordinatorService, this.handlers());
    this.health.addTo(this.server);
    this.watchdog = setInterval(() => this.checkHeartbeats(), Math.max(50, Math.floor(o.heartbeatTimeoutMs / 4)));
    this.watchdog.unref();
  }

  /** Bind `host:port` (port 0 picks one); returns the bound port. */
  listen(address: string, credentials = serverCredentials(this.o.security ?? PLAINTEXT)): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
    });
  }

  /** Accept registrations for a new round of up to `capacity` workers. */
  open(capacity: number): void {
    if (this.gen && this.gen.state.phase !== 'ended') throw new KpCoordError(`round ${this.gen.id} is still running`);
    let loseWith!: (e: WorkerLostError) => void;
    const lost = new Promise<never>((_, reject) => (loseWith = reject));
    lost.catch(() => undefined);
    this.gen = { id: this.nextId++, capacity, members: [], streams: new Map(), lastBeat: new Map(), lost, loseWith, changed: () => undefined, state: { phase: 'gathering' } };
    this.health.setReady(true);
  }

  get round(): number {
    return this.current().id;
  }

  /** Rejects with WorkerLostError when a worker of the current round is lost. */
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
      if (g.state.phase === 'ended') throw g.state.error;
      const ready = g.members.filter((m) => g.streams.has(m.rank));
      if (ready.length >= want) return ready;
      if (Date.now() >= deadline && ready.length > 0) {
        // Ranks are registration order: one registered without a stream would be sealed in.
        const silent = g.members.filter((m) => !g.streams.has(m.rank));
        if (silent.length === 0) return ready;
        throw this.lose(g, silent, 'disconnected', 'registered but never opened its command stream');
      }
      const woken = new Promise<void>((r) => (g.changed = r));
      const wait = Number.isFinite(deadline) ? Math.max(10, deadline - Date.now()) : 60_000;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([woken, g.lost, new Promise<void>((r) => (timer = setTimeout(r, wait)))]).finally(() => clearTimeout(timer));
    }
  }

  /**
   * Fix this round's world at `world` members (ranks 0..world-1); later registrations are
   * refused, and members beyond `world` are told to shut down. Collectives can start now.
   */
  seal(world: number): readonly Member[] {
    const g = this.current();
    if (g.members.length < world) throw new KpCoordError(`cannot seal round ${g.id} at ${world}: only ${g.members.length} members`);
    for (const extra of g.members.slice(world)) {
      this.o.log.info({ rank: extra.rank, workerId: extra.workerId }, 'worker not needed in this round');
      const stream = g.streams.get(extra.rank);
      g.streams.delete(extra.rank);
      g.lastBeat.delete(extra.rank);
      stream?.write({ kind: { $case: 'shutdown', value: { reason: `not needed: the run continues with ${world} workers` } } });
      stream?.end();
    }
    g.members.length = world;
    this.advance(g, { phase: 'sealed', scalars: new ScalarAllReduce(world), barrier: new ReportBarrier(world) });
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
    if (g.state.phase === 'ended') throw g.state.error;
    const stream = g.streams.get(rank);
    if (!stream) throw new KpCoordError(`no command stream for rank ${rank}`);
    stream.write(command);
  }

  broadcast(command: Command): void {
    for (const m of this.current().members) this.send(m.rank, command);
  }

  /** End the current round: every worker drops what it is doing and registers again. */
  abort(reason: string): void {
    const g = this.gen;
    if (!g) return;
    // The round may have ended already (a loss ends it); its streams are told either way.
    this.endRound(g, new WorkerLostError([], 'aborted', reason));
    for (const stream of g.streams.values()) {
      stream.write({ kind: { $case: 'abort', value: { reason } } });
      stream.end();
    }
    g.streams.clear();
  }

  /**
   * Tell every member of the current round to exit (the run is over or failed). The
   * round ends like any other: pending all-reduces and barriers fail, later sends throw.
   */
  shutdown(reason: string): void {
    const g = this.gen;
    if (!g) return;
    this.endRound(g, new WorkerLostError([], 'aborted', `round ${g.id} was shut down: ${reason}`));
    for (const stream of g.streams.values()) {
      stream.write({ kind: { $case: 'shutdown', value: { reason } } });
      stream.end();
    }
    g.streams.clear();
  }

  /** Stop serving; a pending `gather` rejects. Idempotent. */
  close(): Promise<void> {
    this.closed ??= this.shutdownServer();
    return this.closed;
  }

  private async shutdownServer(): Promise<void> {
    if (this.gen) this.endRound(this.gen, new WorkerLostError([], 'aborted', 'the coordinator is closing'));
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

  private current(): Round {
    if (!this.gen) throw new KpCoordError('no round is open');
    return this.gen;
  }

  private sealedState(): Extract<RoundState, { phase: 'sealed' }> {
    const g = this.current();
    if (g.state.phase === 'ended') throw g.state.error;
    if (g.state.phase !== 'sealed') throw new KpCoordError(`round ${g.id} is not sealed`);
    return g.state;
  }

  /** The one place a round's state changes; a transition not in NEXT_PHASES is a bug. */
  private advance(g: Round, next: RoundState): void {
    if (!NEXT_PHASES[g.state.phase].includes(next.phase)) {
      throw new KpCoordError(`round ${g.id}: cannot go from ${g.state.phase} to ${next.phase}`);
    }
    this.o.log.debug({ round: g.id, from: g.state.phase, to: next.phase }, 'round state');
    const before = g.state;
    g.state = next;
    if (next.phase === 'ended' && before.phase === 'sealed') {
      before.scalars.fail(next.error);
      before.barrier.fail(next.error);
    }
  }

  private endRound(g: Round, error: WorkerLostError): void {
    if (g.state.phase === 'ended') return;
    this.advance(g, { phase: 'ended', error });
    g.loseWith(error);
    g.changed();
  }

  /** A member of the live round, or null (with the call answered) when the call is stale. */
  private memberOf(round: number, rank: number): Round | null {
    const g = this.gen;
    if (!g || g.state.phase === 'ended' || g.id !== round || !g.members[rank]) return null;
    return g;
  }

  /** The sealed state of a live member's round, or null when the call is stale or early. */
  private sealedFor(round: number, rank: number): Extract<RoundState, { phase: 'sealed' }> | null {
    const g = this.memberOf(round, rank);
    return g?.state.phase === 'sealed' ? g.state : null;
  }

  private authorised<Req, Res>(call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>, what: string): boolean {
    if (hasToken(call.metadata, this.o.token)) return true;
    this.refusals.refused({ peer: call.getPeer(), call: what });
    cb({ code: grpc.status.UNAUTHENTICATED, details: 'missing or wrong worker token' });
    return false;
  }

  private handlers(): CoordinatorServer {
    const stale = (round: number) => ({ code: grpc.status.ABORTED, details: `round ${round} has ended; register again` });
    return {
      register: (call, cb) => {
        if (!this.authorised(call, cb, 'Register')) return;
        const r = call.request;
        const g = this.gen;
        if (!g || g.state.phase === 'ended') {
          cb({ code: grpc.status.UNAVAILABLE, details: 'the coordinator is still preparing the run; retry' });
          return;
        }
        if (g.state.phase === 'sealed' || g.members.length >= g.capacity) {
          cb({ code: grpc.status.RESOURCE_EXHAUSTED, details: `the run already has its ${g.members.length} workers` });
          return;
        }
        const member: Member = { rank: g.members.length, host: r.host, dataPort: r.dataPort, pid: r.pid, workerId: r.workerId };
        g.members.push(member);
        g.lastBeat.set(member.rank, Date.now());
        this.o.log.info({ ...member, round: g.id }, 'worker joined');
        cb(null, { rank: member.rank, world: g.capacity, runId: this.o.runId, round: g.id, heartbeatIntervalMs: this.o.heartbeatIntervalMs, heartbeatTimeoutMs: this.o.heartbeatTimeoutMs });
      },
      commands: (call) => {
        if (!hasToken(call.metadata, this.o.token)) {
          this.refusals.refused({ peer: call.getPeer(), call: 'Commands' });
          call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'missing or wrong worker token' });
          return;
        }
        const { rank, round } = call.request;
        const g = this.memberOf(round, rank);
        if (!g || g.streams.has(rank)) {
          call.emit('error', { code: grpc.status.FAILED_PRECONDITION, details: `rank ${rank} of round ${round} is not registered or already connected` });
          return;
        }
        g.streams.set(rank, call);
        call.on('cancelled', () => this.workerGone(g, rank, 'its command stream was cancelled'));
        call.on('close', () => this.workerGone(g, rank, 'its command stream closed'));
        g.changed();
      },
      allReduce: (call, cb) => {
        if (!this.authorised(call, cb, 'AllReduce')) return;
        const { rank, key, values, round } = call.request;
        const sealed = this.sealedFor(round, rank);
        if (!sealed) return cb(stale(round));
        sealed.scalars.contribute(rank, key, values).then(
          (sum) => cb(null, { values: sum }),
          (e: Error) => cb({ code: grpc.status.ABORTED, details: e.message }),
        );
      },
      report: (call, cb) => {
        if (!this.authorised(call, cb, 'Report')) return;
        const report = call.request as WorkerReport;
        const sealed = this.sealedFor(report.round, report.rank);
        if (!sealed) return cb(stale(report.round));
        sealed.barrier.add(report);
        cb(null, {});
      },
      heartbeat: (call, cb) => {
        if (!this.authorised(call, cb, 'Heartbeat')) return;
        const { rank, round } = call.request;
        const g = this.memberOf(round, rank);
        if (!g) return cb(stale(round));
        g.lastBeat.set(rank, Date.now());
        cb(null, {});
      },
    };
  }

  private checkHeartbeats(): void {
    const g = this.gen;
    if (!g || g.state.phase === 'ended' || this.closing) return;
    const now = Date.now();
    const silentMs = (m: Member) => now - (g.lastBeat.get(m.rank) ?? now);
    // All of them at once: local mode must stop every stopped process, not only the first.
    const silent = g.members.filter((m) => silentMs(m) > this.o.heartbeatTimeoutMs);
    if (silent.length > 0) this.lose(g, silent, 'heartbeat', `no heartbeat for ${silentMs(silent[0]!)} ms (timeout ${this.o.heartbeatTimeoutMs} ms)`);
  }

  private workerGone(g: Round, rank: number, why: string): void {
    if (!g.streams.has(rank)) return;
    g.streams.delete(rank);
    if (this.closing || g.state.phase === 'ended') return;
    this.lose(g, [g.members[rank]!], 'disconnected', why);
  }

  private lose(g: Round, members: readonly Member[], kind: 'disconnected' | 'heartbeat', why: string): WorkerLostError {
    const who = members.map((m) => `worker rank ${m.rank} (${m.workerId})`).join(', ');
    const error = new WorkerLostError(members, kind, `${who} lost: ${why}`);
    for (const m of members) this.o.log.error({ rank: m.rank, workerId: m.workerId, round: g.id, reason: why }, 'worker lost');
    this.endRound(g, error);
    return error;
  }
}
