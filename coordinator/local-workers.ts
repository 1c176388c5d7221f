import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { TOKEN_ENV, TOKEN_FILE_ENV } from '../shared/auth.js';
import { KpCoordError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { withWorkerMalloc } from '../worker/malloc-settings.js';

// `kp-coord start`: the N worker processes of a local run, each a `kp-coord worker` child with
// the token in its environment (never in argv), its log in OUTPUT_DIR/logs/worker-<i>.log, and
// the machine's cores split between them (each ORT session gets cores / N intra-op threads).
// A worker that dies is started again (it registers as a replacement); one the coordinator
// declared lost while its process still exists (stopped, hung) is killed first.

export interface LocalWorkersOptions {
  readonly count: number;
  readonly coordinator: string;
  readonly token: string;
  readonly cliPath: string;
  readonly logDir: string;
  /** onnxruntime intra-op threads per worker; default: the cores split evenly. */
  readonly threadsPerWorker?: number;
  /** More `kp-coord worker` arguments (e.g. `--collective star` for the benchmark baseline). */
  readonly extraArgs?: readonly string[];
  /** Restarts of dead workers, in all, before the run is failed. */
  readonly maxRestarts: number;
  readonly log: Logger;
}

export class LocalWorkers {
  private readonly children: ChildProcess[] = [];
  private stopping = false;
  private restarts = 0;
  private onFatal: (e: Error) => void = () => undefined;
  readonly threadsPerWorker: number;

  constructor(private readonly o: LocalWorkersOptions) {
    this.threadsPerWorker = o.threadsPerWorker ?? Math.max(1, Math.floor(availableParallelism() / o.count));
  }

  /** Spawn the workers; `onFatal` fires if a worker dies and may not be restarted any more. */
  start(onFatal: (e: Error) => void): void {
    this.onFatal = onFatal;
    mkdirSync(this.o.logDir, { recursive: true });
    for (let i = 0; i < this.o.count; i++) this.spawn(i);
  }

  /** The coordinator lost this worker: if it is one of ours and still exists, kill it (it is restarted on exit). */
  killLost(pid: number): void {
    const child = this.children.find((c) => c.pid === pid && c.exitCode === null && c.signalCode === null);
    if (!child) return;
    this.o.log.warn({ workerPid: pid }, 'killing a lost worker that is still running');
    child.kill('SIGKILL');
    // A stopped process gets SIGKILL too; SIGCONT is not needed for it to die.
  }

  /** Wait for every worker to exit by itself (after Shutdown), up to `graceMs`, then kill the rest. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    const exits = this.children.map((c) => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => c.once('exit', () => r()))));
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    await Promise.all(exits);
    clearTimeout(timer);
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.stopping = true;
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
  }

  private spawn(slot: number): void {
    const logFile = join(this.o.logDir, `worker-${slot}.log`);
    const out = createWriteStream(logFile, { flags: 'a' });
    const child = spawn(process.execPath, [this.o.cliPath, 'worker', '--coordinator', this.o.coordinator, '--threads', String(this.threadsPerWorker), ...(this.o.extraArgs ?? [])], {
      // Only the variable: a KPCOORD_TOKEN_FILE inherited from the parent would win over it.
      env: withWorkerMalloc({ ...withoutKey(process.env, TOKEN_FILE_ENV), [TOKEN_ENV]: this.o.token }),
      // The IPC channel is how a worker notices that this process is gone (see the worker command).
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
    child.on('exit', (code, signal) => {
      if (this.stopping || code === 0) return;
      const what = `local worker ${slot} (pid ${child.pid}) exited with ${signal ?? `code ${code}`}; see ${logFile}`;
      if (this.restarts >= this.o.maxRestarts) {
        this.onFatal(new KpCoordError(`${what}, and ${this.o.maxRestarts} restarts are used up (max_restarts)`));
        return;
      }
      this.restarts++;
      this.o.log.warn({ worker: slot, restarts: this.restarts }, `${what}; starting it again`);
      this.spawn(slot);
    });
    this.children[slot] = child;
    this.o.log.info({ worker: slot, pid: child.pid, log: logFile, threads: this.threadsPerWorker }, 'started local worker');
  }
}

function withoutKey(env: NodeJS.ProcessEnv, key: string): NodeJS.ProcessEnv {
  const copy = { ...env };
  delete copy[key];
  return copy;
}
