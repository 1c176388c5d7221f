import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { readEventLog, RunEventLog } from '../../../coordinator/report/event-log.js';
import { InputFileError } from '../../../shared/errors.js';

// OUTPUT_DIR/events.jsonl: what the coordinator writes reads back through the events-v1 schemas; a
// continued run appends after cutting a line its killed predecessor left half-written; bad lines
// are reported with file:line and the field.

const config = { model: 'preset:t5-tiny', global_batch_size: 8, learning_rate: 1e-3, lr_scheduler_type: 'linear', seed: 1, output_dir: '/tmp/o' };

test('events.jsonl round-trips, a run ends once, and a continued run drops a half-written line', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-event-log-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'events.jsonl');
  const log = new RunEventLog(path, 'r', config, false);
  log.onEvent({ type: 'started', world: 2, totalSteps: 4, zeroStage: 2 });
  log.onEvent({ type: 'step', step: 0, totalSteps: 4, epoch: 0, loss: 3, lr: 1e-3, gradNorm: 1, samplesPerSecond: 2, tokensPerSecond: 3, etaSeconds: 1 });
  log.onEvent({ type: 'note', text: 'terminal only' });
  log.fail('worker lost for good');
  log.fail('reported again on the way out');
  const events = readEventLog(path);
  assert.deepEqual(events.map((e) => (e.kind === 'lifecycle' ? e.event.event : e.kind)), ['run_started', 'progress', 'failed']);
  assert.deepEqual(events.map((e) => e.event.seq), [0, 1, 2]);

  appendFileSync(path, '{"kind":"progress","v":1,"ru');
  const continued = new RunEventLog(path, 'r', config, true);
  continued.onEvent({ type: 'rolled_back', toStep: 0, reason: 'coordinator restarted' });
  assert.deepEqual(readEventLog(path).map((e) => (e.kind === 'lifecycle' ? e.event.event : e.kind)), ['run_started', 'progress', 'failed', 'rolled_back']);

  new RunEventLog(path, 'r', config, false);
  assert.equal(readFileSync(path, 'utf8'), '', 'a fresh run starts a fresh log');
});

test('a bad line names the file, line and field', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-event-log-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'events.jsonl');
  writeFileSync(path, `${JSON.stringify({ kind: 'progress', v: 1, run: 'r', seq: 0, time: new Date().toISOString(), step: 0 })}\n`);
  assert.throws(() => readEventLog(path), (err: unknown) => err instanceof InputFileError && /events\.jsonl:1: step: /u.test(err.message));
  writeFileSync(path, '\n{"kind":"weird"}\n');
  assert.throws(() => readEventLog(path), /events\.jsonl:2: kind: expected progress, eval or lifecycle, got "weird"/u);
});
