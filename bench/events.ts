// Publishing overhead: what NATS costs the coordinator per step, measured in one run.
//
//   npx tsc -p . && node dist/bench/events.js [steps] [rounds]     (default 12 steps, 2 rounds)
//
// 1. The publisher alone against a real `nats-server -js` (loopback, temp store): 5,000 step
//    events with throttling off (the worst case: every step is a JetStream publish + ack), timed
//    in wall and CPU time per event, flush included.
// 2. Whole runs: `kp-coord start --workers 2` on t5-tiny for [steps] steps without NATS, with NATS
//    at the default 1 s progress interval and with throttling off; rounds interleave the three so
//    load from other processes hits them alike. The ratio is the median step time with NATS over the
//    median step time without (summary.json's per-step coordinator seconds).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { natsConnectionOptions } from '../coordinator/nats/nats-connection.js';
import { NatsPublisher } from '../coordinator/nats/nats-publisher.js';
import { rootLogger } from '../shared/log.js';
import { NatsTestServer, natsServerInstalled } from '../test/helpers/nats-server.js';

const steps = Number(process.argv[2] ?? 12);
const rounds = Number(process.argv[3] ?? 2);
if (!Number.isSafeInteger(steps) || steps < 2 || !Number.isSafeInteger(rounds) || rounds < 1) {
  process.stderr.write(`usage: node dist/bench/events.js [steps >= 2] [rounds >= 1]\n`);
  process.exit(2);
}
if (!natsServerInstalled()) {
  process.stderr.write('bench/events needs nats-server on PATH (apt-get install nats-server)\n');
  process.exit(1);
}

const CLI = fileURLToPath(new URL('../coordinator/cli/main.js', import.meta.url));
const server = await NatsTestServer.start();
const dir = mkdtempSync(join(tmpdir(), 'kp-bench-events-'));
try {
  // --- 1. publisher alone
  const events = 5000;
  const log = rootLogger.child({ bench: 'events' }, { level: 'warn' });
  const pub = new NatsPublisher({
    connection: natsConnectionOptions({ url: server.url }),
    prefix: 'kpcoord',
    run: 'bench-publisher',
    progressIntervalMs: 0,
    config: { model: 'preset:t5-tiny', global_batch_size: 8, learning_rate: 1e-3, lr_scheduler_type: 'linear', seed: 1, output_dir: dir },
    log,
  });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let onEventMs = 0;
  for (let step = 0; step < events; step++) {
    const s0 = performance.now();
    pub.onEvent({ type: 'step', step, totalSteps: events, epoch: 0, loss: 2, lr: 1e-3, gradNorm: 1, samplesPerSecond: 8, tokensPerSecond: 800, etaSeconds: 1 });
    onEventMs += performance.now() - s0;
    // A real step yields to the event loop (gRPC reports); let the pump run as it would.
    if (step % 10 === 0) await new Promise((r) => setImmediate(r));
  }
  const report = await pub.close(60_000);
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const perEvent = { wall_us: (wallMs * 1000) / events, cpu_us: (cpu.user + cpu.system) / events, on_event_us: (onEventMs * 1000) / events };

  // --- 2. whole runs
  const modes = { none: [] as string[], nats_default: ['--nats', server.url], nats_every_step: ['--nats', server.url, '--set', 'nats.progress_interval_ms=0'] };
  const stepSeconds: Record<keyof typeof modes, number[]> = { none: [], nats_default: [], nats_every_step: [] };
  for (let r = 0; r < rounds; r++) {
    for (const [mode, extra] of Object.entries(modes) as [keyof typeof modes, string[]][]) {
      const out = join(dir, `${mode}-${r}`);
      await runStart(['--set', `output_dir=${out}`, '--set', `run_name=bench-${mode.replace(/_/gu, '-')}-${r}`, ...extra]);
      const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { train_loss: { seconds: number }[] };
      // The first step carries session warm-up; it is the same with or without NATS, so leave it out.
      stepSeconds[mode].push(...summary.train_loss.slice(1).map((s) => s.seconds));
    }
  }
  // Medians: a step that another process slowed down should not move the ratio.
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const base = median(stepSeconds.none);
  const result = {
    publisher_events: events,
    publisher_wall_us_per_event: round(perEvent.wall_us),
    publisher_cpu_us_per_event: round(perEvent.cpu_us),
    on_event_us: round(perEvent.on_event_us),
    published: report.published,
    dropped: report.dropped,
    run_steps: steps,
    rounds,
    step_seconds_without_nats: round(base),
    step_seconds_nats_default: round(median(stepSeconds.nats_default)),
    step_seconds_nats_every_step: round(median(stepSeconds.nats_every_step)),
    ratio_nats_default: round(median(stepSeconds.nats_default) / base),
    ratio_nats_every_step: round(median(stepSeconds.nats_every_step) / base),
    publisher_cpu_share_of_step: round(perEvent.cpu_us / 1e6 / base),
  };
  process.stdout.write(
    [
      `publisher alone (${events} step events, throttling off): ${result.publisher_wall_us_per_event} us wall, ${result.publisher_cpu_us_per_event} us CPU per event (onEvent itself ${result.on_event_us} us); published ${report.published}`,
      `runs (t5-tiny, 2 workers, ${steps} steps x ${rounds} rounds), median coordinator step time:`,
      `  without NATS          ${result.step_seconds_without_nats} s`,
      `  NATS, 1 s throttle    ${result.step_seconds_nats_default} s  (ratio ${result.ratio_nats_default})`,
      `  NATS, every step      ${result.step_seconds_nats_every_step} s  (ratio ${result.ratio_nats_every_step})`,
      `publisher CPU per event / step time without NATS: ${result.publisher_cpu_share_of_step}`,
      `BENCH_EVENTS ${JSON.stringify(result)}`,
    ].join('\n') + '\n',
  );
} finally {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}

function runStart(extra: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const args = [CLI, 'start', '--workers', '2', '--set', 'model=preset:t5-tiny', '--set', `max_steps=${steps}`, ...extra];
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, KPCOORD_NATS_URL: '' } });
    let err = '';
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    proc.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`kp-coord start ${extra.join(' ')} exited ${code}:\n${err}`))));
  });
}

function round(x: number): number {
  return Number(x.toPrecision(4));
}
