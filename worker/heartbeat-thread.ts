import { Worker } from 'node:worker_threads';
import { rootLogger } from '../shared/log.js';
import type { TransportSecurity } from '../shared/tls/transport-security.js';

// Heartbeats from a worker thread: onnxruntime-node runs a session synchronously on the main
// thread (seconds per step on a large model), and the optimizer's loops block it too, so beats
// sent from there would stop exactly when the worker is busiest. A thread of its own keeps beating
// while the process runs, and stops when the process is stopped (SIGSTOP) or gone — which is
// what the coordinator's timeout is for. The beats work the other way too: when the coordinator
// has not answered for the timeout (its host vanished without closing the connection), or says
// the round has ended, the thread tells the main thread, which gives the round up.

export interface HeartbeatTarget {
  readonly coordinator: string;
  readonly token: string;
  readonly rank: number;
  readonly round: number;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** As the main thread's control client (Buffers arrive in the thread as Uint8Arrays). */
  readonly security?: TransportSecurity;
}

/** What the thread posts when the coordinator is lost to this worker. */
export interface CoordinatorLost {
  readonly reason: string;
}

export class HeartbeatThread {
  private readonly thread: Worker;

  constructor(target: HeartbeatTarget, onCoordinatorLost: (reason: string) => void) {
    this.thread = new Worker(new URL('./heartbeat-loop.js', import.meta.url), { workerData: target });
    this.thread.on('message', (m: CoordinatorLost) => onCoordinatorLost(m.reason));
    // A thread that cannot start or dies stops the beats: the coordinator then times this worker out,
    // which is the right outcome; log it so the reason is visible.
    this.thread.on('error', (err) => rootLogger.error({ err: err.message }, 'heartbeat thread failed'));
    // The process must be free to exit while the thread still beats.
    this.thread.unref();
  }

  async stop(): Promise<void> {
    await this.thread.terminate();
  }
}
