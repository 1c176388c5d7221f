import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { loadHfModel } from '../../../shared/weights/hf-checkpoint.js';
import { REPO_ROOT } from '../../helpers/sample-cache.js';

// Real runs: `kp-coord start` with worker processes talking gRPC on loopback.
const CLI = join(REPO_ROOT, 'dist', 'coordinator', 'cli', 'main.js');

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

function start(outputDir: string, args: string[]): { summary: z.infer<typeof SummarySchema>; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'start', '--set', `output_dir=${outputDir}`, '--set', 'model=preset:t5-tiny', '--set', 'max_steps=2', ...args], {
    encoding: 'utf8',
    cwd: REPO_ROOT,
    timeout: 240_000,
    env: { ...process.env, KPCOORD_TOKEN: 'a-test-token-of-enough-length' },
  });
  assert.equal(r.status, 0, `kp-coord start failed:\n${r.stderr}`);
  return { summary: SummarySchema.parse(JSON.parse(readFileSync(join(outputDir, 'summary.json'), 'utf8'))), stderr: r.stderr };
}

test('kp-coord start: 1 worker and 2 worker processes, same global batch, reach the same weights', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-start-'));
  try {
    // Global batch 8 both times: 1 x 4 x accumulation 2, and 2 x 4.
    const one = start(join(dir, 'one'), ['--workers', '1', '--set', 'gradient_accumulation_steps=2']);
    const two = start(join(dir, 'two'), ['--workers', '2']);
    assert.equal(one.summary.world_size, 1);
    assert.equal(two.summary.world_size, 2);
    assert.equal(two.summary.zero_stage, 2);
    assert.equal(two.summary.steps, 2);
    assert.equal(two.summary.train_loss.length, 2);
    assert.match(two.stderr, /worker 1 joined/);
    const a = await loadHfModel(join(dir, 'one', 'final'));
    const b = await loadHfModel(join(dir, 'two', 'final'));
    const pmax = a.flat.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    let worst = 0;
    for (let i = 0; i < a.flat.length; i++) worst = Math.max(worst, Math.abs(a.flat[i]! - b.flat[i]!));
    // Only float32 summation order differs (see test/unit/zero): 1e-6 of the largest weight.
    assert.ok(worst <= 1e-6 * pmax, `weights differ by ${worst} (max ${pmax})`);
    assert.ok(Math.abs(one.summary.train_loss[0]!.loss - two.summary.train_loss[0]!.loss) < 1e-5 * one.summary.train_loss[0]!.loss);
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
  const server = new ControlServer({ world: 1, token: 'the-right-token-0123456789', runId: 't', planJson: '{}', log });
  const port = await server.listen('127.0.0.1:0');
  const bad = new ControlClient(`127.0.0.1:${port}`, 'a-wrong-token-0123456789');
  try {
    await assert.rejects(bad.register({ host: '127.0.0.1', dataPort: 1, pid: 1, workerId: 'x' }), /UNAUTHENTICATED|missing or wrong worker token/);
    await assert.rejects(bad.allReduce(0, 'k', [1]), /UNAUTHENTICATED/);
    assert.ok(warnings.some((w) => w.includes('refused a call without the worker token')));
    // The same call with the right token is accepted.
    const good = new ControlClient(`127.0.0.1:${port}`, 'the-right-token-0123456789');
    const reply = await good.register({ host: '127.0.0.1', dataPort: 1, pid: 1, workerId: 'x' });
    assert.equal(reply.rank, 0);
    good.close();
  } finally {
    bad.close();
    await server.close();
  }
});

test('kp-coord worker without a token exits with a clear error', () => {
  const env = { ...process.env };
  delete env.KPCOORD_TOKEN;
  delete env.KPCOORD_TOKEN_FILE;
  const r = spawnSync(process.execPath, [CLI, 'worker', '--coordinator', '127.0.0.1:1'], { encoding: 'utf8', env, timeout: 30_000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /no worker token: set KPCOORD_TOKEN or KPCOORD_TOKEN_FILE/);
});
