import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import test from 'node:test';
import { drawsHangul, launchChromium, noChromium, screenshot } from '../../helpers/browser.js';
import { CliProcess, runToExit, workerPids } from '../../helpers/kp-coord-process.js';

// A real short run (t5-tiny, 2 workers, 6 steps, eval every 2 steps, predict_with_generate) with a
// worker killed by SIGKILL after step 3: the run rolls back to its step-2 checkpoint, a replacement
// joins, and the run finishes and writes report.html. The report is opened in headless Chromium with
// the network off; `kp-coord report --run-dir` rebuilds the same page from the directory.

const STEPS = 6;

function runSettings(outputDir: string): string[] {
  return [
    'model=preset:t5-tiny', `max_steps=${STEPS}`, 'per_device_train_batch_size=2', 'gradient_accumulation_steps=1', 'workers=2', `output_dir=${outputDir}`,
    'eval_strategy=steps', 'eval_steps=2', 'save_strategy=steps', 'save_steps=2', 'logging_steps=1', 'generation_max_length=16',
    'heartbeat_interval_ms=250', 'heartbeat_timeout_ms=4000',
  ].flatMap((s) => ['--set', s]);
}

interface PageFacts {
  lossPoints: number;
  marks: string;
  bestStep: string;
  evalNote: string;
  timeline: string;
  predictions: string;
  state: string;
  scores: string;
}

const FACTS = `(() => ({
  lossPoints: Number(document.getElementById('chart-loss').dataset.points),
  marks: document.getElementById('chart-loss').dataset.marks,
  bestStep: document.getElementById('chart-eval').dataset.bestStep,
  evalNote: document.querySelector('#chart-eval .note').textContent,
  timeline: document.getElementById('timeline').innerText,
  predictions: document.getElementById('predictions').innerText,
  state: document.querySelector('#runs tr[data-run]').dataset.state,
  scores: document.getElementById('scores').innerText,
}))()`;

test('report.html of a run with a killed worker: loss per step, best eval, rollback, Hangul, offline', { skip: noChromium, timeout: 300_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-report-'));
  const out = join(dir, 'out');
  const browser = await launchChromium();
  t.after(async () => {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = new CliProcess(['start', '--threads-per-worker', '1', ...runSettings(out)]);
  await run.waitFor(new RegExp(`step 3/${STEPS} `));
  const pid = workerPids(run.output).get(1);
  assert.ok(pid !== undefined, run.output);
  process.kill(pid, 'SIGKILL');
  const output = await run.succeeded();
  // Step 4 may have been committed before the kill landed; the rollback goes to the newest checkpoint.
  const rolledTo = Number(/rolled back to step (\d+)/u.exec(output)?.[1]);
  assert.ok(rolledTo === 2 || rolledTo === 4, output);
  const reportPath = join(out, 'report.html');
  assert.match(output, new RegExp(`report: ${reportPath}`));
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { best_step: number; restarts: number };
  const gold = JSON.parse(readFileSync(join(out, 'eval_predictions.jsonl'), 'utf8').split('\n')[0]!) as { label: string };
  assert.equal(summary.restarts, 1);

  // Offline: every request but the file itself is refused and recorded.
  const context = await browser.newContext({ offline: true, viewport: { width: 1280, height: 900 } });
  const requests: string[] = [];
  const errors: string[] = [];
  context.on('request', (r) => requests.push(r.url()));
  await context.route(/^(?!file:)/u, (route) => route.abort());
  const page = await context.newPage();
  page.on('pageerror', (e) => errors.push(String(e)));
  const url = pathToFileURL(reportPath).href;
  await page.goto(url);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 10_000 });
  const facts = (await page.evaluate(FACTS)) as PageFacts;
  t.diagnostic(`screenshot: ${await screenshot(page, 'report-killed-worker')}`);

  assert.deepEqual(errors, []);
  assert.deepEqual(requests, [url], 'the report loads nothing but itself');
  assert.equal(facts.state, 'finished');
  assert.equal(facts.lossPoints, STEPS, 'one point per step (steps trained again after the rollback replace the first try)');
  // Both marks sit where the run was when the worker was lost (step 3, or 4 if it was committed first).
  const lostAt = /worker_left@(\d+)/u.exec(facts.marks)?.[1];
  assert.ok(lostAt === '3' || lostAt === '4', facts.marks);
  assert.match(facts.marks, new RegExp(`rolled_back@${lostAt}\\b`, 'u'));
  assert.match(facts.timeline, new RegExp(`rolled back to step ${rolledTo}`, 'u'));
  assert.match(facts.timeline, /worker 1 lost/u);
  assert.equal(facts.bestStep, String(summary.best_step + 1));
  assert.match(facts.evalNote, new RegExp(`^best: step ${summary.best_step + 1}, eval loss \\d+\\.\\d{4}; patience left \\d`, 'u'));
  assert.match(facts.scores, /F1@10 \(team, lenient\) \(seed_f1_at_10\)/u);
  assert.match(facts.scores, /ROUGE-L/u);
  // The gold keyphrases are Korean: the text is there, and the page's font draws Hangul.
  assert.ok(facts.predictions.includes(gold.label.split('; ')[0]!), facts.predictions);
  const hangul = await drawsHangul(page, '#predictions td:nth-child(3)');
  assert.ok(hangul.ok, `Hangul does not render with font-family ${hangul.font} (install fonts-nanum or fonts-noto-cjk)`);
  assert.match(hangul.font, /Noto Sans CJK KR.*NanumGothic/u, 'the font stack names Korean fonts before the generic family');
  await context.close();

  // kp-coord report rebuilds the page from the directory alone.
  rmSync(reportPath);
  const rebuilt = await runToExit(['report', '--run-dir', out]);
  assert.equal(rebuilt.code, 0, rebuilt.output);
  assert.ok(existsSync(reportPath));
  const page2 = await browser.newPage();
  await page2.goto(pathToFileURL(reportPath).href);
  await page2.waitForSelector('body[data-ready="1"]', { timeout: 10_000 });
  const again = (await page2.evaluate(FACTS)) as PageFacts;
  assert.deepEqual({ ...again, timeline: undefined }, { ...facts, timeline: undefined });
});

test('kp-coord report names what is missing in a directory that is not a run', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-report-empty-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = await runToExit(['report', '--run-dir', dir]);
  assert.equal(r.code, 1);
  assert.match(r.output, /no run\.json, summary\.json or events\.jsonl: not a kp-coord output_dir/u);
});

test('Ctrl-C on kp-coord start still writes report.html, and the page names the run interrupted', { skip: noChromium, timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-report-int-'));
  const out = join(dir, 'out');
  const browser = await launchChromium();
  t.after(async () => {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const run = new CliProcess(['start', '--threads-per-worker', '1', ...runSettings(out).map((s) => s.replace(`max_steps=${STEPS}`, 'max_steps=40'))]);
  await run.waitFor(/step 2\/40 /u);
  run.child.kill('SIGINT');
  const { code } = await run.exited;
  assert.equal(code, 130, run.output);
  const page = await browser.newPage();
  await page.goto(pathToFileURL(join(out, 'report.html')).href);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 10_000 });
  const facts = (await page.evaluate(FACTS)) as PageFacts;
  assert.equal(facts.state, 'interrupted');
  assert.ok(facts.lossPoints >= 2 && facts.lossPoints < 40, String(facts.lossPoints));
  assert.match(facts.timeline, /interrupted \(stopped on purpose\)/u);
});
