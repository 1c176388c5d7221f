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

// The coordinator's gRPC service: membership (ranks in order of registration), one command
// stream per worker, scalar all-reduce and report barriers. The step driver uses it through
// `waitForWorkers`, `send`, `barrier`; nothing here decides what a run does.

export interface Member {
  readonly rank: number;
  readonly host: string;
  readonly dataPort: number;
  readonly pid: number;
  readonly workerId: string;
}

export interface ControlServerOptions {
  readonly world: number;
  readonly token: string;
  readonly runId: string;
  readonly log: Logger;
}

export class ControlServer {
  readonly scalars: ScalarAllReduce;
  readonly barrier: ReportBarrier;
  /**
   * grpc.health.v1 on the control port: NOT_SERVING while the run is being prepared (data cache,
   * plan), SERVING once the plan is set and the server listens.
   */
  readonly health = new HealthStatus();
  private readonly members: Member[] = [];
  private readonly streams = new Map<number, grpc.ServerWritableStream<unknown, Command>>();
  private readonly server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
  private allConnected!: () => void;
  private readonly connected = new Promise<void>((r) => (this.allConnected = r));
  private lost: ((e: Error) => void) | null = null;
  private closing = false;
  private listening = false;
  /** The TrainPlan JSON every worker receives; until it is set, Register answers UNAVAILABLE. */
  private planJson: string | null = null;

  constructor(private readonly o: ControlServerOptions) {
    this.scalars = new ScalarAllReduce(o.world);
    this.barrier = new ReportBarrier(o.world);
    this.server.addService(CoordinatorService, this.handlers());
    this.health.addTo(this.server);
  }

  /** Bind `host:port` (port 0 picks one); returns the bound port. */
  listen(address: string, credentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, credentials, (err, port) => {
        if (err) return reject(err);
        this.listening = true;
        this.health.setReady(this.planJson !== null);
        resolve(port);
      });
    });
  }

  /** The run is planned: workers may register now. */
  setPlan(planJson: string): void {
    this.planJson = planJson;
    this.health.setReady(this.listening);
  }

  /** Resolves when `world` workers registered and opened their command streams. */
  async waitForWorkers(): Promise<readonly Member[]> {
    await this.connected;
    return this.members;
  }

  peers(): Peer[] {
    return this.members.map((m) => ({ rank: m.rank, host: m.host, dataPort: m.dataPort }));
  }

  send(rank: number, command: Command): void {
    const stream = this.streams.get(rank);
    if (!stream) throw new KpCoordError(`no command stream for rank ${rank}`);
    stream.write(command);
  }

  broadcast(command: Command): void {
    for (let r = 0; r < this.o.world; r++) this.send(r, command);
  }

  /** Called once with the first lost worker (its command stream closed before shutdown). */
  onWorkerLost(callback: (e: Error) => void): void {
    this.lost = callback;
  }

  async close(): Promise<void> {
    this.closing = true;
    this.health.shutdown();
    for (const s of this.streams.values()) s.end();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
  }

  private authorised<Req, Res>(call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>, what: string): boolean {
    if (hasToken(call.metadata, this.o.token)) return true;
    this.o.log.warn({ peer: call.getPeer(), call: what }, 'refused a call without the worker token');
    cb({ code: grpc.status.UNAUTHENTICATED, details: 'missing or wrong worker token' });
    return false;
  }

  private handlers(): CoordinatorServer {
    return {
      register: (call, cb) => {
        if (!this.authorised(call, cb, 'Register')) return;
        const r = call.request;
        if (this.planJson === null) {
          cb({ code: grpc.status.UNAVAILABLE, details: 'the coordinator is still preparing the run; retry' });
          return;
        }
        if (this.members.length >= this.o.world) {
          cb({ code: grpc.status.RESOURCE_EXHAUSTED, details: `the run already has its ${this.o.world} workers` });
          return;
        }
        const member: Member = { rank: this.members.length, host: r.host, dataPort: r.dataPort, pid: r.pid, workerId: r.workerId };
        this.members.push(member);
        this.o.log.info({ ...member }, 'worker joined');
        cb(null, { rank: member.rank, world: this.o.world, runId: this.o.runId, configJson: this.planJson });
      },
      commands: (call) => {
        if (!hasToken(call.metadata, this.o.token)) {
          this.o.log.warn({ peer: call.getPeer(), call: 'Commands' }, 'refused a call without the worker token');
          call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'missing or wrong worker token' });
          return;
        }
        const rank = call.request.rank;
        if (!this.members[rank] || this.streams.has(rank)) {
          call.emit('error', { code: grpc.status.FAILED_PRECONDITION, details: `rank ${rank} is not registered or already connected` });
          return;
        }
        this.streams.set(rank, call);
        call.on('cancelled', () => this.workerGone(rank));
        call.on('close', () => this.workerGone(rank));
        if (this.streams.size === this.o.world && this.members.length === this.o.world) this.allConnected();
      },
      allReduce: (call, cb) => {
        if (!this.authorised(call, cb, 'AllReduce')) return;
        const { rank, key, values } = call.request;
        this.scalars.contribute(rank, key, values).then(
          (sum) => cb(null, { values: sum }),
          (e: Error) => cb({ code: grpc.status.ABORTED, details: e.message }),
        );
      },
      report: (call, cb) => {
        if (!this.authorised(call, cb, 'Report')) return;
        this.barrier.add(call.request as WorkerReport);
        cb(null, {});
      },
      heartbeat: (call, cb) => {
        if (!this.authorised(call, cb, 'Heartbeat')) return;
        cb(null, {});
      },
    };
  }

  private workerGone(rank: number): void {
    if (this.closing || !this.streams.has(rank)) return;
    this.streams.delete(rank);
    const error = new KpCoordError(`worker rank ${rank} (${this.members[rank]?.workerId}) disconnected`);
    this.o.log.error({ rank }, 'worker left');
    this.scalars.fail(error);
    this.barrier.fail(error);
    this.lost?.(error);
  }
}
