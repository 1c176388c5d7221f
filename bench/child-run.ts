import { spawn, type ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import { KpCoordError } from '../shared/errors.js';

// The benchmarks' child processes: `node ARGS...` run to completion, its stdout the result, the
// tail of its stderr in the error of a non-zero exit. SIGTERM at the time limit (kp-coord start
// then stops its workers), SIGKILL if it does not exit. One child at a time; an interrupted bench
// stops it (stopChild).

let active: ChildProcess | null = null;

export interface ChildOptions {
  readonly label: string;
  readonly timeoutMs: number;
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Start it through /bin/sh: Linux keeps a process's maxRSS across exec, so a child that is the
   * shell's exec'd successor would report the bench's own peak; through sh it reports its own
   * (bench/engine-memory.ts).
   */
  readonly viaShell?: boolean;
}

export function runNode(args: readonly string[], o: ChildOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = o.viaShell
      ? spawn('/bin/sh', ['-c', '"$@"; exit $?', 'sh', process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: o.env ?? process.env })
      : spawn(process.execPath, [...args], { stdio: ['ignore', 'pipe', 'pipe'], env: o.env ?? process.env });
    active = child;
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const timer = setTimeout(() => {
      console.log(`   ${o.label}: timed out after ${(o.timeoutMs / 60_000).toFixed(1)} min, stopping it (load ${loadavg().map((x) => x.toFixed(2)).join(' ')})`);
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
    }, o.timeoutMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      active = null;
      if (code === 0) resolve(stdout);
      else reject(new KpCoordError(`${o.label}: exited with ${signal ?? `code ${code}`}:\n${stderr}`));
    });
  });
}

/** Stop the running child, if any (an interrupted bench). */
export function stopChild(): void {
  active?.kill('SIGTERM');
}
