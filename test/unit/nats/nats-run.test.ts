import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'node:test';
import { EventReader } from '../../../coordinator/nats/event-reader.js';
import { natsConnectionOptions } from '../../../coordinator/nats/nats-connection.js';
import { NatsPublisher } from '../../../coordinator/nats/nats-publisher.js';
import { rootLogger } from '../../../shared/log.js';
import type { KpcoordEvent } from '../../../shared/events/events-v1.js';
import { NatsTestServer, natsServerInstalled } from '../../helpers/nats-server.js';

// Real runs (`kp-coord start` as a child process, 2 workers, t5-tiny) publishing to a real
// `nats-server -js`; events are read back through the stream and validated by the schemas.

const CLI = fileURLToPath(new URL('../../../coordinator/cli/main.js', import.meta.url));
const skip = natsServerInstalled() ? false : 'nats-server is not installed (apt-get install nats-server)';

interface Child {
  readonly done: Promise<number>;
  stdout(): string;
  stderr(): string;
  kill(): void;
}

function runCli(args: string[], timeoutMs = 120_000): Child {
  const proc = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KPCOORD_NATS_URL: '' } });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const done = new Promise<number>((resolve) => proc.on('close', (code) => (clearTimeout(timer), resolve(code ?? -1))));
  return { done, stdout: () => out, stderr: () => err, kill: () => proc.kill('SIGKILL') };
}

function startRun(url: string, run: string, outDir: string, steps: number): Child {
  return runCli(['start', '--workers', '2', '--nats', url, '--set', 'model=preset:t5-tiny', '--set', `max_steps=${steps}`, '--set', `run_name=${run}`, '--set', `output_dir=${outDir}`, '--set', 'nats.progress_interval_ms=0']);
}

async function readAll(url: string, run: string): Promise<KpcoordEvent[]> {
  const reader = await EventReader.open({ url }, 'kpcoord');
  try {
    const events: KpcoordEvent[] = [];
    await reader.read(run, { follow: false, onEvent: (e) => void events.push(e) });
    return events;
  } finally {
    await reader.close();
  }
}

/** Polls the stream until `pred` holds for the run's events (or the child exits first). */
async function waitForEvents(url: string, run: string, child: Child, pred: (es: KpcoordEvent[]) => boolean): Promise<void> {
  let exited = false;
  void child.done.then(() => (exited = true));
  for (;;) {
    const events = await readAll(url, run).catch(() => []);
    if (pred(events)) return;
    if (exited) throw new Error(`run exited before the awaited events; stderr:\n${child.stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// An eval event is the eval loss, or predict_with_generate's scores (the embedded default ends with it).
const label = (e: KpcoordEvent) =>
  e.kind === 'lifecycle' ? e.event.event : e.kind === 'progress' ? `progress ${e.event.step}` : 'eval_loss' in e.event ? 'eval' : 'generate_eval';

test('a run publishes its events in order; status shows its state, --follow ends with it', { skip, timeout: 180_000 }, async (t) => {
  const server = await NatsTestServer.start();
  const dir = mkdtempSync(join(tmpdir(), 'kp-nats-run-'));
  t.after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const run = startRun(server.url, 'it-run', join(dir, 'out'), 3);
  t.after(() => run.kill());
  await waitForEvents(server.url, 'it-run', run, (es) => es.length > 0);
  const follow = runCli(['status', '--nats', server.url, '--run', 'it-run', '--follow', '--json']);
  t.after(() => follow.kill());
  const mid = runCli(['status', '--nats', server.url, '--run', 'it-run', '--json']);
  assert.equal(await mid.done, 0, mid.stderr());
  const midState = JSON.parse(mid.stdout()) as { run: string; phase: string; workers: unknown[] };
  assert.equal(midState.run, 'it-run');
  assert.ok(['starting', 'training', 'finished'].includes(midState.phase), midState.phase);
  assert.ok(midState.workers.length >= 1 && midState.workers.length <= 2);

  assert.equal(await run.done, 0, run.stderr());
  const events = await readAll(server.url, 'it-run');
  assert.deepEqual(events.map(label), ['worker_joined', 'worker_joined', 'run_started', 'progress 1', 'progress 2', 'progress 3', 'checkpoint_saved', 'generate_eval', 'finished']);
  assert.deepEqual(events.map((e) => e.event.seq), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  const times = events.map((e) => Date.parse(e.event.time));
  assert.ok(times.every((x, i) => i === 0 || x >= times[i - 1]!), 'times in order');

  assert.equal(await follow.done, 0, follow.stderr());
  const followed = follow.stdout().trim().split('\n').map((l) => JSON.parse(l) as { kind: string; event?: string; seq: number });
  assert.deepEqual(followed.map((f) => f.seq), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(followed.at(-1)?.event, 'finished');

  const snap = runCli(['status', '--nats', server.url, '--run', 'it-run', '--json']);
  assert.equal(await snap.done, 0, snap.stderr());
  const s = JSON.parse(snap.stdout()) as { phase: string; step: number; total_steps: number; workers: { rank: number }[]; last_checkpoint: { step: number; dir: string } };
  assert.deepEqual([s.phase, s.step, s.total_steps, s.workers.map((w) => w.rank), s.last_checkpoint.step], ['finished', 3, 3, [0, 1], 3]);
  assert.equal(s.last_checkpoint.dir, join(dir, 'out', 'final'));

  const list = runCli(['status', '--nats', server.url]);
  assert.equal(await list.done, 0, list.stderr());
  assert.match(list.stdout(), /^RUN .*\nit-run +finished +3\/3 /u);

  const unknown = runCli(['status', '--nats', server.url, '--run', 'nope']);
  assert.equal(await unknown.done, 1);
  assert.match(unknown.stderr(), /run "nope" has no events on NATS at .*; runs there: it-run/u);
  await server.stop();
  const down = runCli(['status', '--nats', server.url]);
  assert.equal(await down.done, 1);
  assert.match(down.stderr(), /cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+/u);
});

test('NATS stopped mid-run and restarted after the run ended: training goes on and no event is lost', { skip, timeout: 180_000 }, async (t) => {
  const server = await NatsTestServer.start();
  const dir = mkdtempSync(join(tmpdir(), 'kp-nats-restart-'));
  t.after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const run = startRun(server.url, 'restart-run', join(dir, 'out'), 4);
  t.after(() => run.kill());
  await waitForEvents(server.url, 'restart-run', run, (es) => es.some((e) => e.kind === 'progress'));
  await server.stop();
  // The run finishes while NATS is down: its summary line is printed before the publisher flushes.
  const deadline = Date.now() + 120_000;
  while (!run.stdout().includes('"summary"')) {
    assert.ok(Date.now() < deadline, `run did not finish; stderr:\n${run.stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await server.restart();
  assert.equal(await run.done, 0, run.stderr());
  assert.match(run.stderr(), /NATS unreachable: training continues/u);
  const events = await readAll(server.url, 'restart-run');
  assert.deepEqual(events.map(label), ['worker_joined', 'worker_joined', 'run_started', 'progress 1', 'progress 2', 'progress 3', 'progress 4', 'checkpoint_saved', 'generate_eval', 'finished']);
  // Consecutive publisher sequence numbers: nothing dropped, nothing stored twice.
  assert.deepEqual(events.map((e) => e.event.seq), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test('a publisher started while NATS is down publishes once it is up; --follow of a failed run exits 1', { skip, timeout: 60_000 }, async (t) => {
  const server = await NatsTestServer.start();
  t.after(() => server.close());
  await server.stop();
  const log = rootLogger.child({ test: 'nats' }, { level: 'silent' });
  const pub = new NatsPublisher({
    connection: natsConnectionOptions({ url: server.url }, {}),
    prefix: 'kpcoord',
    run: 'failing-run',
    progressIntervalMs: 60_000,
    config: { model: 'preset:t5-tiny', global_batch_size: 8, learning_rate: 1e-3, lr_scheduler_type: 'linear', seed: 1, output_dir: '/tmp/o' },
    log,
  });
  pub.onEvent({ type: 'worker_joined', rank: 0, host: 'h', pid: 1, workerId: 'w' });
  pub.onEvent({ type: 'started', world: 1, totalSteps: 10, zeroStage: 0 });
  for (let step = 0; step < 5; step++) pub.onEvent({ type: 'step', step, totalSteps: 10, epoch: 0, loss: 3 - step / 10, lr: 1e-3, gradNorm: 1, samplesPerSecond: 1, tokensPerSecond: 1, etaSeconds: 1 });
  pub.fail('worker 0 lost');
  pub.fail('reported twice'); // a run fails once
  await new Promise((r) => setTimeout(r, 500));
  await server.restart();
  const report = await pub.close(20_000);
  // Throttled at 60 s: step 1 goes out, steps 2-4 are replaced by 5, which goes out before `failed`.
  assert.deepEqual({ ...report, dropped: undefined }, { published: 5, throttled: 3, unsent: 0, dropped: undefined });
  const events = await readAll(server.url, 'failing-run');
  assert.deepEqual(events.map(label), ['worker_joined', 'run_started', 'progress 1', 'progress 5', 'failed']);

  const follow = runCli(['status', '--nats', server.url, '--run', 'failing-run', '--follow']);
  assert.equal(await follow.done, 1, follow.stderr());
  assert.match(follow.stdout(), /^run failing-run: failed \(worker 0 lost\)\n  step 5\/10 /u);
});
