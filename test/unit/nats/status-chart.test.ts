import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import test from 'node:test';
import { natsConnectionOptions } from '../../../coordinator/nats/nats-connection.js';
import { NatsPublisher } from '../../../coordinator/nats/nats-publisher.js';
import { downsample, formatLossChart } from '../../../coordinator/nats/loss-chart.js';
import { rootLogger } from '../../../shared/log.js';
import { CLI } from '../../helpers/kp-coord-process.js';
import { NatsTestServer, natsServerInstalled } from '../../helpers/nats-server.js';

// `kp-coord status --run NAME` draws the loss curve on a terminal (a real pseudo-terminal from
// util-linux `script`) and stays plain text when piped. The events come from the real publisher
// into a real nats-server, so the chart is drawn from what the stream holds.

const skip = natsServerInstalled() ? false : 'nats-server is not installed (apt-get install nats-server)';
const noScript = (await new Promise<boolean>((r) => spawn('script', ['--version'], { stdio: 'ignore' }).on('exit', (c) => r(c === 0)).on('error', () => r(false)))) ? false : 'util-linux script is not installed';

test('downsample averages into at most width columns, in order', () => {
  assert.deepEqual(downsample([1, 2, 3], 5), [1, 2, 3]);
  assert.deepEqual(downsample([1, 3, 5, 7, 9, 11], 3), [2, 6, 10]);
  assert.equal(downsample(Array.from({ length: 1000 }, (_, i) => i), 70).length, 70);
});

test('formatLossChart: a caption with the steps, one row per level, the extremes on the axis', () => {
  const points = [10, 8, 6, 5, 4.5, 4.2].map((loss, i) => ({ step: i + 1, loss }));
  const chart = formatLossChart(points, { width: 60, height: 6 })!;
  const lines = chart.split('\n');
  assert.equal(lines[0], '  train loss, steps 1-6');
  assert.equal(lines.length, 1 + 7);
  // asciichart marks the first value's row with ┼: the first loss is the highest.
  assert.match(lines[1]!, /^\s+10\.000 ┼╮/u);
  assert.match(lines.at(-1)!, /^\s+4\.200 ┤ +╰ *$/u);
  assert.equal(formatLossChart(points.slice(0, 1), { width: 60 }), null);
});

function run(args: string[], tty: boolean): Promise<{ code: number | null; out: string }> {
  const command = [process.execPath, CLI, ...args].map((a) => `'${a}'`).join(' ');
  // `script` gives the command a pseudo-terminal as stdout; its own output is the terminal's.
  const child = tty
    ? spawn('script', ['-qec', `stty cols 90; ${command}`, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, out })));
}

test('kp-coord status draws the loss chart on a TTY and not when piped', { skip: skip || noScript, timeout: 60_000 }, async (t) => {
  const server = await NatsTestServer.start();
  t.after(() => server.close());
  const pub = new NatsPublisher({
    connection: natsConnectionOptions({ url: server.url }, {}),
    prefix: 'kpcoord',
    run: 'chart-run',
    progressIntervalMs: 0,
    config: { model: 'preset:t5-tiny', global_batch_size: 8, learning_rate: 1e-3, lr_scheduler_type: 'linear', seed: 1, output_dir: '/tmp/o' },
    log: rootLogger.child({ test: 'status-chart' }, { level: 'silent' }),
  });
  pub.onEvent({ type: 'started', world: 1, totalSteps: 12, zeroStage: 0 });
  for (let step = 0; step < 12; step++) pub.onEvent({ type: 'step', step, totalSteps: 12, epoch: 0, loss: 9 / (step + 1) + 1, lr: 1e-3, gradNorm: 1, samplesPerSecond: 1, tokensPerSecond: 1, etaSeconds: 1 });
  pub.onEvent({ type: 'finished', summaryPath: '/tmp/o/summary.json' });
  await pub.close(10_000);

  const args = ['status', '--nats', server.url, '--run', 'chart-run'];
  const piped = await run(args, false);
  assert.equal(piped.code, 0, piped.out);
  assert.match(piped.out, /^run chart-run: finished\n/u);
  assert.doesNotMatch(piped.out, /[┤┼╰╭│]/u, 'plain text when piped');

  const tty = await run(args, true);
  assert.equal(tty.code, 0, tty.out);
  assert.match(tty.out, /run chart-run: finished/u);
  assert.match(tty.out, /train loss, steps 1-12/u);
  assert.match(tty.out, /10\.000 ┼/u, 'the first loss (10) tops the axis');
  assert.match(tty.out, /1\.750 ┤/u, 'the last loss (9/12 + 1) is the bottom');
});
