import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './kp-coord-process.js';

// A real `nats-server -js` for tests: a free loopback port, a temp store dir, stop/restart on the
// same port and store (so the stream survives), and close() that always kills and cleans up.

export function natsServerInstalled(): boolean {
  return spawnSync('nats-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

export class NatsTestServer {
  private proc: ChildProcess | null = null;
  private constructor(
    readonly port: number,
    readonly storeDir: string,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<NatsTestServer> {
    const s = new NatsTestServer(await freePort(), mkdtempSync(join(tmpdir(), 'kp-nats-')));
    await s.restart();
    return s;
  }

  /** Starts the server (again) on the same port and store. */
  async restart(): Promise<void> {
    if (this.proc) throw new Error('nats-server already running');
    const proc = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', this.storeDir], { stdio: 'ignore' });
    this.proc = proc;
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(this.port))) {
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`nats-server did not start on port ${this.port} (exit ${proc.exitCode})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await exited;
    }
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.storeDir, { recursive: true, force: true });
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = tcpConnect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}
