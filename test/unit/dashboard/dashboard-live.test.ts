import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { connect } from 'nats';
import { launchChromium, noChromium, screenshot } from '../../helpers/browser.js';
import { CliProcess, runToExit } from '../../helpers/kp-coord-process.js';
import { NatsTestServer, natsServerInstalled } from '../../helpers/nats-server.js';

// `kp-coord dashboard` against a real nats-server, watched by headless Chromium while a real short
// run trains: each progress event shows on the loss chart within a second (times taken from the
// same clock: this process's NATS subscription and the page's own observer), NATS is stopped and
// restarted mid-run and the page carries on to the last step, and the page asks nothing from any
// origin but the dashboard's.

const STEPS = 10;
const skip = noChromium || (natsServerInstalled() ? false : 'nats-server is not installed (apt-get install nats-server)');

/** In the page: record when the loss chart first showed each number of points (Date.now, ms). */
const WATCH_POINTS = `(() => {
  window.__shown = {};
  const note = () => {
    const el = document.getElementById('chart-loss');
    const n = Number(el && el.dataset.points);
    // Points can arrive together: each count up to n is shown from now on, if not already.
    for (let k = 1; k <= n; k++) if (!(k in window.__shown)) window.__shown[k] = Date.now();
  };
  new MutationObserver(note).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-points'], childList: true });
  note();
})()`;

const pointsShown = (n: number) => `Number(document.getElementById('chart-loss')?.dataset.points) >= ${n}`;
const natsState = (s: string) => `document.getElementById('connection').dataset.state === '${s}'`;

test('the dashboard follows a run live, within a second per step, through a NATS restart', { skip, timeout: 300_000 }, async (t) => {
  const nats = await NatsTestServer.start();
  const dir = mkdtempSync(join(tmpdir(), 'kp-dashboard-'));
  const browser = await launchChromium();
  const dashboard = new CliProcess(['dashboard', '--nats', nats.url, '--listen', '127.0.0.1:0']);
  t.after(async () => {
    dashboard.child.kill('SIGKILL');
    await browser.close();
    await nats.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const origin = (await dashboard.waitFor(/dashboard: (http:\/\/127\.0\.0\.1:\d+)\//u, 30_000))[1]!;

  // The test's own probes are evaluated strings, which the page's CSP forbids: this page bypasses it.
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
  const foreign: string[] = [];
  const errors: string[] = [];
  page.on('request', (r) => void (r.url().startsWith(`${origin}/`) || foreign.push(r.url())));
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${origin}/`);
  await page.waitForFunction(natsState('no-stream'), null, { timeout: 10_000 });
  await page.evaluate(WATCH_POINTS);

  // When each progress event reached NATS subscribers, by step.
  const nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  const published = new Map<number, number>();
  const sub = nc.subscribe('kpcoord.live-run.progress');
  void (async () => {
    for await (const m of sub) {
      const step = (m.json() as { step: number }).step;
      if (!published.has(step)) published.set(step, Date.now());
    }
  })();
  t.after(() => nc.close());

  const run = new CliProcess([
    'start', '--workers', '2', '--threads-per-worker', '1', '--nats', nats.url,
    ...['model=preset:t5-tiny', `max_steps=${STEPS}`, 'per_device_train_batch_size=2', 'gradient_accumulation_steps=1', 'run_name=live-run', `output_dir=${join(dir, 'out')}`,
      'nats.progress_interval_ms=0', 'eval_strategy=steps', 'eval_steps=5', 'save_strategy=steps', 'save_steps=5', 'logging_steps=1'].flatMap((s) => ['--set', s]),
  ]);
  t.after(() => void (run.child.exitCode === null && run.child.kill('SIGKILL')));

  const runEnded = run.exited.then(({ code }) => Promise.reject(new Error(`the run exited (${code}) before 3 steps showed:\n${run.output}`)));
  runEnded.catch(() => undefined); // only the race below looks at it
  await Promise.race([page.waitForFunction(pointsShown(3), null, { timeout: 120_000 }), runEnded]);
  const shown = (await page.evaluate('window.__shown')) as Record<string, number>;
  for (const step of [1, 2, 3]) {
    const at = published.get(step);
    assert.ok(at !== undefined && shown[step] !== undefined, `step ${step}: published ${at}, shown ${shown[step]}`);
    assert.ok(shown[step]! - at < 1000, `step ${step} showed ${shown[step]! - at} ms after its progress event`);
  }
  t.diagnostic(`page latency per step (ms): ${[1, 2, 3].map((s) => shown[s]! - published.get(s)!).join(', ')}`);

  // NATS goes away mid-run: the page says so; back on the same port and store, it carries on.
  await nats.stop();
  await page.waitForFunction(natsState('unreachable'), null, { timeout: 10_000 });
  await screenshot(page, 'dashboard-nats-down');
  await new Promise((r) => setTimeout(r, 1500));
  await nats.restart();
  await page.waitForFunction(natsState('live'), null, { timeout: 15_000 });
  await run.succeeded();
  await page.waitForFunction(`${pointsShown(STEPS)} && document.querySelector('#runs tr[data-run="live-run"]')?.dataset.state === 'finished'`, null, { timeout: 30_000 });
  // The run's files are on this host: the page adds the keyphrase table and bytes per step.
  await page.waitForFunction(`document.getElementById('chart-bytes').dataset.points === '${STEPS}' && document.querySelectorAll('#predictions tbody tr').length > 0`, null, { timeout: 10_000 });
  const points = Number(await page.evaluate(`document.getElementById('chart-loss').dataset.points`));
  assert.equal(points, STEPS, 'one point per step, none twice after the restart');
  const summary = JSON.parse(readFileSync(join(dir, 'out', 'summary.json'), 'utf8')) as { best_step: number };
  assert.equal(await page.evaluate(`document.getElementById('chart-eval').dataset.bestStep`), String(summary.best_step + 1));
  t.diagnostic(`screenshot: ${await screenshot(page, 'dashboard-live-run')}`);

  // A page opened now gets the whole history at once, and works under its CSP (no eval, nothing outside).
  const fresh = await browser.newPage();
  fresh.on('request', (r) => void (r.url().startsWith(`${origin}/`) || foreign.push(r.url())));
  fresh.on('pageerror', (e) => errors.push(String(e)));
  await fresh.goto(`${origin}/`);
  await fresh.waitForSelector(`#chart-loss[data-points="${STEPS}"]`, { timeout: 10_000 });

  assert.deepEqual(foreign, [], 'no request outside the dashboard');
  assert.deepEqual(errors, []);
});

test('kp-coord dashboard --listen must be host:port (usage error, exit 2)', async () => {
  const r = await runToExit(['dashboard', '--listen', 'nope']);
  assert.equal(r.code, 2);
  assert.match(r.output, /--listen nope: expected host:port, e\.g\. 127\.0\.0\.1:8080/u);
});
