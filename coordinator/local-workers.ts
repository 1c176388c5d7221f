import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { TOKEN_ENV } from '../shared/auth.js';
import { KpCoordError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';

// `kp-coord start`: the N worker processes of a local run, each a `kp-coord worker` child with
// the token in its environment (never in argv), its log in OUTPUT_DIR/logs/worker-<i>.log, and
// the machine's cores split between them (each ORT session gets cores / N intra-op threads).

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
  readonly log: Logger;
}

export class LocalWorkers {
  private readonly children: ChildProcess[] = [];
  private stopping = false;
  readonly threadsPerWorker: number;

  constructor(private readonly o: LocalWorkersOptions) {
    this.threadsPerWorker = o.threadsPerWorker ?? Math.max(1, Math.floor(availableParallelism() / o.count));
  }

  /** Spawn the workers; `onUnexpectedExit` fires if one exits before `stop()`. */
  start(onUnexpectedExit: (e: Error) => void): void {
    mkdirSync(this.o.logDir, { recursive: true });
    for (let i = 0; i < this.o.count; i++) {
      const logFile = join(this.o.logDir, `worker-${i}.log`);
      const out = createWriteStream(logFile, { flags: 'a' });
      const child = spawn(process.execPath, [this.o.cliPath, 'worker', '--coordinator', this.o.coordinator, '--threads', String(this.threadsPerWorker), ...(this.o.extraArgs ?? [])], {
        env: { ...process.env, [TOKEN_ENV]: this.o.token },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout!.pipe(out);
      child.stderr!.pipe(out);
      child.on('exit', (code, signal) => {
        if (this.stopping) return;
        if (code === 0) return;
        onUnexpectedExit(new KpCoordError(`local worker ${i} (pid ${child.pid}) exited with ${signal ?? `code ${code}`}; see ${logFile}`));
      });
      this.children.push(child);
      this.o.log.info({ worker: i, pid: child.pid, log: logFile, threads: this.threadsPerWorker }, 'started local worker');
    }
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
}
