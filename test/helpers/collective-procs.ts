import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DataPlaneOptionsInput, PeerAddress } from '../../worker/collectives/data-plane-options.js';

// Parent side of collective-worker.ts: spawns worker processes on loopback, wires them into a ring
// and runs collectives in all of them at once. Every wait is bounded; close() always kills.

export type WorkerSpec =
  | { mode: 'data-plane'; rank: number; token: string; timeoutMs: number; dataPlane: DataPlaneOptionsInput; tlsDir?: string }
  | { mode: 'tcp-sink'; bytes: number };

export type CollectiveOp = 'allReduce' | 'reduceScatter' | 'allGather' | 'star';

export interface RunRequest {
  op: CollectiveOp;
  tag: string;
  seed: number;
  /** Buffer length in floats (a padded flat size for the world). */
  length: number;
  repeats: number;
  returnResult: boolean;
}

export type ParentMessage = { type: 'connect'; peers: PeerAddress[] } | ({ type: 'run' } & RunRequest) | { type: 'close' };

export interface RanMessage {
  type: 'ran';
  seconds: number[];
  /** This process's user + system CPU time over all the repeats. */
  cpuSeconds: number;
  bytesSent: number;
  sha256: string;
  result: Float32Array | null;
}

export type WorkerMessage =
  | { type: 'listening'; port: number }
  | { type: 'connected' }
  | RanMessage
  | { type: 'failed'; message: string }
  | { type: 'tcp-received'; bytes: number; cpuSeconds: number };

const WORKER_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'collective-worker.js');

/** One child process and its inbox of IPC messages. */
export class WorkerProc {
  private readonly inbox: WorkerMessage[] = [];
  private waiter: (() => void) | null = null;
  private exit: string | null = null;

  private constructor(readonly child: ChildProcess, readonly label: string) {
    child.on('message', (m: WorkerMessage) => {
      this.inbox.push(m);
      this.waiter?.();
    });
    child.on('exit', (code, signal) => {
      this.exit = `${label} exited (code ${code}, signal ${signal})`;
      this.waiter?.();
    });
  }

  static spawn(spec: WorkerSpec, label: string, execArgv: string[] = []): WorkerProc {
    const child = fork(WORKER_SCRIPT, [JSON.stringify(spec)], {
      execArgv, // e.g. ['--cpu-prof'] to profile the workers
      serialization: 'advanced', // Float32Array results cross IPC as typed arrays
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, KPCOORD_LOG_LEVEL: process.env.KPCOORD_LOG_LEVEL ?? 'error' },
    });
    return new WorkerProc(child, label);
  }

  send(message: ParentMessage): void {
    if (this.exit) throw new Error(this.exit);
    this.child.send(message);
  }

  /** The next message, which must be of `type`; a 'failed' report, an exit or the timeout rejects. */
  async next<T extends WorkerMessage['type']>(type: T, timeoutMs: number): Promise<Extract<WorkerMessage, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      if (this.exit) throw new Error(this.exit);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.label}: no '${type}' message within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
    const m = this.inbox.shift()!;
    if (m.type === 'failed') throw new Error(`${this.label}: ${m.message}`);
    if (m.type !== type) throw new Error(`${this.label}: expected '${type}', got '${m.type}'`);
    return m as Extract<WorkerMessage, { type: T }>;
  }

  /** Ask it to close, then kill it if it has not exited within `graceMs`. */
  async stop(graceMs = 2000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    try {
      if (this.child.connected) this.child.send({ type: 'close' } satisfies ParentMessage);
    } catch {
      // The channel is already gone; the kill below still ends the process.
    }
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

export interface RingProcsOptions {
  /** Per-rank worker tokens (all equal unless a test wants a stranger). */
  tokens: string[];
  dataPlane?: DataPlaneOptionsInput;
  /** The collective timeout inside the workers. */
  timeoutMs?: number;
  /** Bound on each wait for a worker's reply. */
  replyTimeoutMs?: number;
  /** Node flags for the workers (e.g. --cpu-prof). */
  execArgv?: string[];
  /** Mutual TLS between the ranks, from this --tls-dir (plaintext without). */
  tlsDir?: string;
}

/** N data-plane worker processes wired into one world on loopback. */
export class RingProcs {
  private constructor(
    readonly procs: WorkerProc[],
    readonly ports: number[],
    private readonly replyTimeoutMs: number,
  ) {}

  static async start(options: RingProcsOptions): Promise<RingProcs> {
    const replyTimeoutMs = options.replyTimeoutMs ?? 30_000;
    const procs = options.tokens.map((token, rank) =>
      WorkerProc.spawn({ mode: 'data-plane', rank, token, timeoutMs: options.timeoutMs ?? 20_000, dataPlane: options.dataPlane ?? {}, ...(options.tlsDir ? { tlsDir: options.tlsDir } : {}) }, `rank ${rank}`, options.execArgv),
    );
    try {
      const ports = (await Promise.all(procs.map((p) => p.next('listening', replyTimeoutMs)))).map((m) => m.port);
      const peers = ports.map((port, rank) => ({ rank, host: '127.0.0.1', port }));
      for (const p of procs) p.send({ type: 'connect', peers });
      await Promise.all(procs.map((p) => p.next('connected', replyTimeoutMs)));
      return new RingProcs(procs, ports, replyTimeoutMs);
    } catch (e) {
      await Promise.all(procs.map((p) => p.stop()));
      throw e;
    }
  }

  /** Run one request on every rank at once; results by rank. */
  async run(request: RunRequest): Promise<RanMessage[]> {
    for (const p of this.procs) p.send({ type: 'run', ...request });
    return Promise.all(this.procs.map((p) => p.next('ran', this.replyTimeoutMs)));
  }

  /** Like run, but each rank's outcome, failures included (for tests of refusal). */
  async runSettled(request: RunRequest): Promise<PromiseSettledResult<RanMessage>[]> {
    for (const p of this.procs) p.send({ type: 'run', ...request });
    return Promise.allSettled(this.procs.map((p) => p.next('ran', this.replyTimeoutMs)));
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop()));
  }
}
