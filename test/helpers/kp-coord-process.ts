import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { loadHfModel } from '../../shared/weights/hf-checkpoint.js';
import { REPO_ROOT } from './sample-cache.js';

// Real `kp-coord` processes for tests and benches: spawn one, watch its stderr as it runs, wait
// for it to exit; compare two final models.

export const CLI = join(REPO_ROOT, 'dist', 'coordinator', 'cli', 'main.js');

export class CliProcess {
  readonly child: ChildProcess;
  private text = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  /** `kp-coord args`; or, with `command`, `command args` (e.g. `ip netns exec NS node CLI ...`). */
  constructor(args: readonly string[], env: NodeJS.ProcessEnv = process.env, command?: string) {
    this.child = command === undefined
      ? spawn(process.execPath, [CLI, ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(command, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stderr!.on('data', (d: Buffer) => (this.text += d.toString()));
    this.child.stdout!.on('data', (d: Buffer) => (this.text += d.toString()));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Everything the process wrote so far (stderr and stdout, interleaved). */
  get output(): string {
    return this.text;
  }

  /**
   * The first match of `pattern` in the output from character `from` on (`index` counts from the
   * start); rejects if the process exits first or on timeout.
   */
  async waitFor(pattern: RegExp, timeoutMs = 120_000, from = 0): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.text.slice(from).match(pattern);
      if (m) return Object.assign(m, { index: (m.index ?? 0) + from });
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`process exited before printing ${pattern}:\n${this.text}`);
      if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${this.text}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Wait for the exit; throws with the output unless it exited with code 0. */
  async succeeded(timeoutMs = 300_000): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`still running after ${timeoutMs} ms:\n${this.text}`)), timeoutMs)));
    try {
      const { code, signal } = await Promise.race([this.exited, timeout]);
      if (code !== 0) throw new Error(`exited with ${signal ?? code}:\n${this.text}`);
      return this.text;
    } finally {
      clearTimeout(timer);
      if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    }
  }
}

/**
 * Run `kp-coord args` to the end without blocking the event loop (unlike spawnSync): its exit code
 * and everything it wrote. Waits for 'close', not 'exit', so the last lines are in `output`;
 * a process still running after `timeoutMs` is killed and the call rejects with its output.
 */
export async function runToExit(
  args: readonly string[],
  options: { readonly env?: NodeJS.ProcessEnv; readonly timeoutMs?: number } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  const timeoutMs = options.timeoutMs ?? 300_000;
  const p = new CliProcess(args, options.env);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.child.kill('SIGKILL');
  }, timeoutMs);
  try {
    const [code, signal] = (await once(p.child, 'close')) as [number | null, NodeJS.Signals | null];
    if (timedOut) throw new Error(`kp-coord ${args.join(' ')}: still running after ${timeoutMs} ms:\n${p.output}`);
    return { code, signal, output: p.output };
  } finally {
    clearTimeout(timer);
  }
}

/** The current worker pid of each rank, from the coordinator's "worker r joined (host:pid)" lines. */
export function workerPids(output: string): Map<number, number> {
  const pids = new Map<number, number>();
  for (const m of output.matchAll(/worker (\d+) joined \([^)]*:(\d+)\)/g)) pids.set(Number(m[1]), Number(m[2]));
  return pids;
}

/** Whether a process with this pid exists (signal 0 probes without signalling). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pids still running after waiting up to `ms` for them all to exit. */
export async function survivors(pids: readonly number[], ms = 10_000): Promise<number[]> {
  const until = Date.now() + ms;
  while (pids.some(processExists) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  return pids.filter(processExists);
}

/** A TCP port free at the time of asking (for a coordinator that must come back on the same one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Largest |a - b| over two saved models' parameters, and the largest |a| (for a relative bound). */
export async function weightDiff(a: string, b: string): Promise<{ worst: number; pmax: number; identical: boolean }> {
  const [x, y] = await Promise.all([loadHfModel(a), loadHfModel(b)]);
  if (x.flat.length !== y.flat.length) throw new Error(`${a} has ${x.flat.length} parameters, ${b} ${y.flat.length}`);
  let worst = 0;
  let pmax = 0;
  for (let i = 0; i < x.flat.length; i++) {
    worst = Math.max(worst, Math.abs(x.flat[i]! - y.flat[i]!));
    pmax = Math.max(pmax, Math.abs(x.flat[i]!));
  }
  return { worst, pmax, identical: worst === 0 };
}
