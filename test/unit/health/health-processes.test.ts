import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { watchHealth } from '../../../shared/health/health-check.js';
import { ServingStatus } from '../../../shared/health/health-status.js';
import { REPO_ROOT } from '../../helpers/sample-cache.js';

// Real processes on loopback: a `kp-coord coordinator` for 2 workers and two `kp-coord worker`s
// with --health-port, probed by `kp-coord health` (exit 0 SERVING, 1 otherwise) and a Watch.

const CLI = join(REPO_ROOT, 'dist', 'coordinator', 'cli', 'main.js');
const env = { ...process.env, KPCOORD_TOKEN: 'a-test-token-of-enough-length', KPCOORD_LOG_LEVEL: 'warn' };

function health(target: string, ...args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [CLI, 'health', '--insecure-plaintext', '--target', target, '--timeout', '2', ...args], { encoding: 'utf8', env, timeout: 30_000 });
  return { code: r.status, out: r.stdout.trim() };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function exited(p: ChildProcess): Promise<number | null> {
  return p.exitCode !== null ? Promise.resolve(p.exitCode) : new Promise((r) => p.once('exit', (code) => r(code)));
}

test('coordinator and worker health: NOT_SERVING until ready, SERVING after, and `kp-coord health` exits 0/1 accordingly', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-health-'));
  const [control, healthA, healthB] = [await freePort(), await freePort(), await freePort()];
  const coordinatorAt = `127.0.0.1:${control}`;
  const children: ChildProcess[] = [];
  const startChild = (args: string[]): ChildProcess => {
    const p = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    p.once('exit', (code) => {
      if (code !== 0 && code !== null) process.stderr.write(`${args[0]} exited ${code}:\n${err}\n`);
    });
    children.push(p);
    return p;
  };
  try {
    // Nothing listens yet: unreachable is not healthy.
    const before = health(coordinatorAt);
    assert.deepEqual(before, { code: 1, out: 'UNREACHABLE' });

    const coordinator = startChild(['coordinator', '--insecure-plaintext', '--listen', coordinatorAt, '--set', `output_dir=${join(dir, 'run')}`,
      '--set', 'model=preset:t5-tiny', '--set', 'max_steps=8', '--set', 'workers=2']);
    await until('the coordinator to listen', () => health(coordinatorAt).code === 0);
    assert.deepEqual(health(coordinatorAt), { code: 0, out: 'SERVING' });
    // The coordinator's server exists only once the config is loaded and the data cache ready, so
    // before that probes see UNREACHABLE (above); NOT_SERVING is what it says when it stops.
    const coordinatorSeen: ServingStatus[] = [];
    const watchingCoordinator = (async () => {
      for await (const s of watchHealth(coordinatorAt)) coordinatorSeen.push(s);
    })();

    // One worker of two: registered but no Setup yet (the run waits for both), so not ready; alive.
    const workerArgs = (port: number): string[] => ['worker', '--insecure-plaintext', '--coordinator', coordinatorAt, '--threads', '1', '--health-port', String(port)];
    startChild(workerArgs(healthA));
    await until('worker A to serve health', () => health(`127.0.0.1:${healthA}`, '--service', 'liveness').code === 0);
    assert.deepEqual(health(`127.0.0.1:${healthA}`), { code: 1, out: 'NOT_SERVING' });

    const seen: ServingStatus[] = [];
    const watching = (async () => {
      try {
        for await (const s of watchHealth(`127.0.0.1:${healthA}`)) seen.push(s);
      } catch {
        // The worker's process ended with the run: the stream closes either way.
      }
    })();
    await until('the watch to start', () => seen.length >= 1);

    // The second worker completes the world: Setup, engines load, both become ready.
    startChild(workerArgs(healthB));
    await until('worker A to become ready', () => seen.includes(ServingStatus.SERVING));

    assert.equal(await exited(coordinator), 0, 'the coordinator finished the run');
    await watching;
    await watchingCoordinator;
    assert.deepEqual(coordinatorSeen, [ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    for (const p of children) await exited(p);
    assert.deepEqual(seen, [ServingStatus.NOT_SERVING, ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    assert.deepEqual(health(coordinatorAt), { code: 1, out: 'UNREACHABLE' });
  } finally {
    for (const p of children) if (p.exitCode === null) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('`kp-coord health --watch` prints each status and exits 1 when the target stops serving', async () => {
  const { HealthServer } = await import('../../../shared/health/health-server.js');
  const server = await HealthServer.listen('127.0.0.1', 0);
  const p = spawn(process.execPath, [CLI, 'health', '--insecure-plaintext', '--target', `127.0.0.1:${server.port}`, '--watch'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await until('the first status', () => out.includes('NOT_SERVING'), 20_000);
  server.status.setReady(true);
  await until('SERVING', () => out.includes('\nSERVING'), 20_000);
  await server.close();
  assert.equal(await exited(p), 1);
  assert.deepEqual(out.trim().split('\n'), ['NOT_SERVING', 'SERVING', 'NOT_SERVING']);
});
