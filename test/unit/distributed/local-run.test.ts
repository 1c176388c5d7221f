import test from 'node:test';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { loadHfModel } from '../../../shared/weights/hf-checkpoint.js';
import { CLI, CliProcess, runToExit, survivors, weightDiff, workerPids } from '../../helpers/kp-coord-process.js';

// Real runs: `kp-coord start` with worker processes talking gRPC on loopback.

const SummarySchema = z.object({
  steps: z.number(),
  epochs: z.number(),
  world_size: z.number(),
  zero_stage: z.number(),
  train_loss: z.array(z.object({ step: z.number(), loss: z.number(), lr: z.number(), grad_norm: z.number() })),
  samples_per_second: z.number().positive(),
  tokens_per_second: z.number().positive(),
  wall_seconds: z.number().positive(),
});

async function start(outputDir: string, args: string[]): Promise<z.infer<typeof SummarySchema>> {
  const r = await runToExit(['start', '--set', `output_dir=${outputDir}`, '--set', 'model=preset:t5-tiny', '--set', 'max_steps=2', '--set', 'gradient_accumulation_steps=1', ...args], {
    timeoutMs: 240_000,
    env: { ...process.env, KPCOORD_TOKEN: 'a-test-token-of-enough-length' },
  });
  assert.equal(r.code, 0, `kp-coord start failed:\n${r.output}`);
  return SummarySchema.parse(JSON.parse(readFileSync(join(outputDir, 'summary.json'), 'utf8')));
}

test('kp-coord start: 1, 2 and 4 worker processes and ZeRO stages 0/1/2/3 reach the same weights', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-start-'));
  try {
    // Global batch 8 every time (per-device x accumulation x workers); one intra-op thread per
    // worker, so the per-sample arithmetic is the same and only summation order can differ.
    const runs = [
      { name: 'n1-s2', args: ['--workers', '1', '--set', 'per_device_train_batch_size=4', '--set', 'gradient_accumulation_steps=2'] },
      { name: 'n2-s0', args: ['--workers', '2', '--set', 'per_device_train_batch_size=4', '--set', 'zero_optimization.stage=0'] },
      { name: 'n2-s1', args: ['--workers', '2', '--set', 'per_device_train_batch_size=4', '--set', 'zero_optimization.stage=1'] },
      { name: 'n2-s2', args: ['--workers', '2', '--set', 'per_device_train_batch_size=4', '--set', 'zero_optimization.stage=2'] },
      { name: 'n4-s2', args: ['--workers', '4', '--set', 'per_device_train_batch_size=2', '--set', 'zero_optimization.stage=2'] },
      // Activation checkpointing and small buckets (d_model^2 = 1024 elements), with the engine on
      // the worker's main thread and in a worker thread (overlap_comm).
      ...[false, true].map((overlap) => ({
        name: `n2-s2-ckpt${overlap ? '-overlap' : ''}`,
        args: ['--workers', '2', '--set', 'per_device_train_batch_size=4', '--set', 'zero_optimization.stage=2', '--set', 'gradient_checkpointing=true', '--set', 'zero_optimization.reduce_bucket_size=auto', '--set', `zero_optimization.overlap_comm=${overlap}`],
      })),
      // Stage 3: units dropped after each use (gathered again for the backward), HF's auto prefetch
      // and persistence (norms stay whole); the engine in a thread (stage 3's default overlap) and
      // AdamW on 2 threads; then 4 workers on the main thread, no prefetch, nothing persistent
      // (DeepSpeed's default threshold, 1e5, would keep every t5-tiny unit whole).
      {
        name: 'n2-s3',
        args: ['--workers', '2', '--set', 'per_device_train_batch_size=4', '--set', 'zero_optimization.stage=3', '--set', 'gradient_checkpointing=true', '--set', 'zero_optimization.stage3_max_reuse_distance=0', '--set', 'zero_optimization.stage3_prefetch_bucket_size=auto', '--set', 'zero_optimization.stage3_param_persistence_threshold=auto', '--set', 'optimizer_threads=2'],
      },
      { name: 'n4-s3', args: ['--workers', '4', '--set', 'per_device_train_batch_size=2', '--set', 'zero_optimization.stage=3', '--set', 'gradient_checkpointing=true', '--set', 'zero_optimization.overlap_comm=false', '--set', 'zero_optimization.stage3_param_persistence_threshold=0', '--set', 'zero_optimization.stage3_prefetch_bucket_size=0'] },
    ];
    const summaries: z.infer<typeof SummarySchema>[] = [];
    for (const r of runs) summaries.push(await start(join(dir, r.name), [...r.args, '--threads-per-worker', '1']));
    assert.deepEqual(summaries.map((s) => s.world_size), [1, 2, 2, 2, 4, 2, 2, 2, 4]);
    assert.deepEqual(summaries.map((s) => s.zero_stage), [2, 0, 1, 2, 2, 2, 2, 3, 3]);
    for (const s of summaries) assert.equal(s.train_loss.length, 2);
    const final = (name: string) => join(dir, name, 'final');
    for (const r of runs.slice(1)) {
      const { worst, pmax } = await weightDiff(final(runs[0]!.name), final(r.name));
      // Only float32 summation order differs (see test/unit/zero): 1e-6 of the largest weight.
      assert.ok(worst <= 1e-6 * pmax, `${r.name}: weights differ from 1 worker by ${worst} (max ${pmax})`);
    }
    // Worker logs (not a TTY): JSON lines, and every line after registration names the run and rank.
    const lines = readFileSync(join(dir, 'n2-s2', 'logs', 'worker-1.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const registered = lines.findIndex((l) => l.msg === 'registered');
    assert.ok(registered >= 0);
    for (const l of lines.slice(registered)) assert.ok(typeof l.run === 'string' && typeof l.rank === 'number', JSON.stringify(l));
    // One world size, three stages: the same sums, so the same bits.
    const [s0, s1, s2] = await Promise.all(['n2-s0', 'n2-s1', 'n2-s2'].map((name) => loadHfModel(final(name))));
    assert.deepEqual(s1!.flat, s0!.flat, 'stage 1 differs from stage 0');
    assert.deepEqual(s2!.flat, s0!.flat, 'stage 2 differs from stage 0');
    // The engine thread runs the same kernels: overlap changes no bit.
    const [local, threaded] = await Promise.all(['n2-s2-ckpt', 'n2-s2-ckpt-overlap'].map((name) => loadHfModel(final(name))));
    assert.deepEqual(threaded!.flat, local!.flat, 'overlap_comm changes the weights');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a worker with the wrong token is refused, and the refusal is logged', async () => {
  const { ControlServer } = await import('../../../coordinator/control-server.js');
  const { ControlClient } = await import('../../../worker/control-client.js');
  const { rootLogger } = await import('../../../shared/log.js');
  const warnings: string[] = [];
  const log = rootLogger.child({});
  log.warn = ((obj: unknown, msg?: string) => void warnings.push(`${JSON.stringify(obj)} ${msg}`)) as typeof log.warn;
  const server = new ControlServer({ token: 'the-right-token-0123456789', runId: 't', log, heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 60_000 });
  const port = await server.listen('127.0.0.1:0');
  const bad = new ControlClient(`127.0.0.1:${port}`, 'a-wrong-token-0123456789');
  try {
    await assert.rejects(bad.register({ host: '127.0.0.1', dataPort: 1, pid: 1, workerId: 'x' }), /UNAUTHENTICATED|missing or wrong worker token/);
    await assert.rejects(bad.seat(0, 1).allReduce('k', [1]), /UNAUTHENTICATED/);
    assert.ok(warnings.some((w) => w.includes('refused a call without the worker token')));
    // The right token is told to retry while the run is being prepared, then accepted.
    const good = new ControlClient(`127.0.0.1:${port}`, 'the-right-token-0123456789');
    await assert.rejects(good.register({ host: '127.0.0.1', dataPort: 1, pid: 1, workerId: 'x' }), /still preparing the run/);
    // Meanwhile the health service answers NOT_SERVING (exit 1), and SERVING (exit 0) once planned.
    // (Async: the server runs in this process, so the test must not block its event loop.)
    const health = () => runToExit(['health', '--insecure-plaintext', '--target', `127.0.0.1:${port}`], { timeoutMs: 30_000 });
    const before = await health();
    assert.equal(before.code, 1);
    assert.match(before.output, /NOT_SERVING/);
    server.open(1);
    const after = await health();
    assert.equal(after.code, 0, after.output);
    const reply = await good.register({ host: '127.0.0.1', dataPort: 1, pid: 1, workerId: 'x' });
    assert.equal(reply.rank, 0);
    good.close();
  } finally {
    bad.close();
    await server.close();
  }
});

test('kp-coord worker without a token exits with a clear error', async () => {
  const env = { ...process.env };
  delete env.KPCOORD_TOKEN;
  delete env.KPCOORD_TOKEN_FILE;
  const r = await runToExit(['worker', '--insecure-plaintext', '--coordinator', '127.0.0.1:1'], { env, timeoutMs: 30_000 });
  assert.equal(r.code, 1);
  assert.match(r.output, /no worker token: set KPCOORD_TOKEN or KPCOORD_TOKEN_FILE/);
});

test('Ctrl-C (SIGINT) stops kp-coord start and every worker process', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-sigint-'));
  const run = new CliProcess(['start', '--workers', '2', '--set', `output_dir=${dir}`, '--set', 'model=preset:t5-tiny', '--set', 'max_steps=1000']);
  try {
    await run.waitFor(/step \d+\/1000/, 60_000);
    const pids = [...workerPids(run.output).values()];
    assert.equal(pids.length, 2);
    run.child.kill('SIGINT');
    const { code } = await run.exited;
    assert.equal(code, 130);
    // The workers go down with it (SIGTERM from the parent); give them a moment to exit.
    assert.deepEqual(await survivors(pids), [], 'worker processes still running after Ctrl-C');
    // Stopped on purpose: the next start in this directory begins afresh (a crash would continue).
    assert.equal((JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { status: string }).status, 'interrupted');
  } finally {
    if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kp-coord start with KPCOORD_TOKEN_FILE: the workers get that token and the run finishes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-token-file-'));
  try {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'a-token-from-a-file-0123456789\n');
    const env: NodeJS.ProcessEnv = { ...process.env, KPCOORD_TOKEN_FILE: tokenFile };
    delete env.KPCOORD_TOKEN;
    // Before the fix the workers preferred the file over the random token start handed them,
    // were refused, and the run waited for ever: the bounded wait makes that a failure.
    const r = await runToExit(['start', '--workers', '1', '--set', `output_dir=${join(dir, 'run')}`, '--set', 'model=preset:t5-tiny', '--set', 'max_steps=1'], { env, timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.output);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a worker child of start that fails before registering exits with 1 (the IPC channel does not hold it)', async () => {
  const { ControlServer } = await import('../../../coordinator/control-server.js');
  const { rootLogger } = await import('../../../shared/log.js');
  const server = new ControlServer({ token: 'the-right-token-0123456789', runId: 't', log: rootLogger.child({}, { level: 'silent' }), heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 60_000 });
  const port = await server.listen('127.0.0.1:0');
  server.open(1);
  // As LocalWorkers starts it: an IPC channel to this process, which stays alive.
  const child = spawn(process.execPath, [CLI, 'worker', '--insecure-plaintext', '--coordinator', `127.0.0.1:${port}`], {
    env: { ...process.env, KPCOORD_TOKEN: 'a-wrong-token-0123456789' },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let output = '';
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  try {
    const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
    assert.equal(signal, null, `killed after 60 s: the worker did not exit by itself\n${output}`);
    assert.equal(code, 1, output);
    assert.match(output, /UNAUTHENTICATED/);
  } finally {
    clearTimeout(timer);
    await server.close();
  }
});

test('bad tokens are refused where they are read: 16 spaces, a short one given to start, an unreadable file', async () => {
  const base = { ...process.env };
  delete base.KPCOORD_TOKEN;
  delete base.KPCOORD_TOKEN_FILE;
  const spaces = await runToExit(['worker', '--insecure-plaintext', '--coordinator', '127.0.0.1:1'], { env: { ...base, KPCOORD_TOKEN: ' '.repeat(16) }, timeoutMs: 30_000 });
  assert.equal(spaces.code, 1, spaces.output);
  assert.match(spaces.output, /KPCOORD_TOKEN: the worker token contains white space/);
  const dir = mkdtempSync(join(tmpdir(), 'kp-short-token-'));
  try {
    const short = await runToExit(['start', '--workers', '1', '--set', `output_dir=${dir}`, '--set', 'model=preset:t5-tiny', '--set', 'max_steps=1'], { env: { ...base, KPCOORD_TOKEN: 'short' }, timeoutMs: 60_000 });
    assert.equal(short.code, 1, short.output);
    assert.match(short.output, /KPCOORD_TOKEN: the worker token is 5 characters; use at least 16/);
    assert.doesNotMatch(short.output, /joined|coordinator listening/);
    const missing = await runToExit(['coordinator', '--insecure-plaintext', '--listen', '127.0.0.1:0'], { env: { ...base, KPCOORD_TOKEN_FILE: join(dir, 'no-such-token') }, timeoutMs: 30_000 });
    assert.equal(missing.code, 1, missing.output);
    assert.match(missing.output, /KPCOORD_TOKEN_FILE \(.*no-such-token\): cannot read the worker token: ENOENT/);
    assert.doesNotMatch(missing.output, /unexpected error/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('500 refused Register calls write 3 warning lines (the 1st, 10th, 100th), each with the count', async () => {
  const { ControlServer } = await import('../../../coordinator/control-server.js');
  const { ControlClient } = await import('../../../worker/control-client.js');
  const { rootLogger } = await import('../../../shared/log.js');
  const warnings: { obj: Record<string, unknown>; msg: string }[] = [];
  const log = rootLogger.child({});
  log.warn = ((obj: Record<string, unknown>, msg: string) => void warnings.push({ obj, msg })) as typeof log.warn;
  const server = new ControlServer({ token: 'the-right-token-0123456789', runId: 't', log, heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 60_000 });
  const port = await server.listen('127.0.0.1:0');
  server.open(1);
  const bad = new ControlClient(`127.0.0.1:${port}`, 'a-wrong-token-0123456789');
  try {
    for (let i = 0; i < 500; i++) await assert.rejects(bad.register({ host: 'h', dataPort: 1, pid: 1, workerId: 'x' }), /UNAUTHENTICATED/);
    assert.deepEqual(warnings.map((w) => w.obj.refused), [1, 10, 100]);
    assert.match(warnings[2]!.msg, /refused a call without the worker token \(100 refusals so far; the next line at 1000\)/);
    assert.equal(warnings[0]!.obj.call, 'Register');
  } finally {
    bad.close();
    await server.close();
  }
});
