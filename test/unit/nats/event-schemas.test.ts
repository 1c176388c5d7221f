import assert from 'node:assert/strict';
import test from 'node:test';
import { EventMapper } from '../../../coordinator/nats/event-mapper.js';
import type { RunEvent } from '../../../coordinator/run-events.js';
import { EventError } from '../../../shared/errors.js';
import { parseEvent, parseSubject } from '../../../shared/events/subjects.js';

const config = { model: 'preset:t5-tiny', global_batch_size: 8, learning_rate: 3e-3, lr_scheduler_type: 'linear', seed: 42, output_dir: '/tmp/x' };
const encode = (x: unknown) => new TextEncoder().encode(JSON.stringify(x));

test('every RunEvent a run emits maps to a message that validates on its subject', () => {
  const m = new EventMapper(config);
  const events: RunEvent[] = [
    { type: 'listening', port: 1 },
    { type: 'worker_joined', rank: 0, host: '10.0.0.1', pid: 12, workerId: 'w0' },
    { type: 'started', world: 2, totalSteps: 3, zeroStage: 2 },
    { type: 'step', step: 0, totalSteps: 3, epoch: 0, loss: 2.5, lr: 0, gradNorm: 1.5, samplesPerSecond: Infinity, tokensPerSecond: 100, etaSeconds: 4 },
    { type: 'eval', step: 0, epoch: 0, evalLoss: 2.4, bestEvalLoss: 2.4, bestStep: 0, isBest: true, patienceLeft: 2 },
    { type: 'early_stop', step: 0, bestEvalLoss: 2.4, bestStep: 0 },
    { type: 'saved', dir: '/tmp/x/final' },
    { type: 'finished', summaryPath: '/tmp/x/summary.json' },
    { type: 'failed', reason: 'worker 1 lost' },
  ];
  const parsed = events.flatMap((e, seq) => {
    const out = m.map(e);
    if (!out) return [];
    const msg = { v: 1, run: 'demo', seq, time: new Date(0).toISOString(), ...out.body };
    return [parseEvent('kpcoord', `kpcoord.demo.${out.kind}`, encode(msg), 'test')];
  });
  assert.deepEqual(parsed.map((p) => (p.kind === 'lifecycle' ? p.event.event : p.kind)), ['worker_joined', 'run_started', 'progress', 'eval', 'early_stopped', 'checkpoint_saved', 'finished', 'failed']);
  const p = parsed[2]!;
  assert.ok(p.kind === 'progress');
  // Steps become counts of steps done; a rate from a 0 ms step (Infinity) is published as 0.
  assert.deepEqual([p.event.step, p.event.samples_per_second], [1, 0]);
  const saved = parsed[5]!;
  assert.ok(saved.kind === 'lifecycle' && saved.event.event === 'checkpoint_saved' && saved.event.step === 1);
});

test('a bad message names the subject, the place and the field', () => {
  const bad = { v: 1, run: 'demo', seq: 0, time: 'yesterday', step: 0, total_steps: 3, epoch: 0, loss: 1, lr: 0, grad_norm: 0, samples_per_second: 0, tokens_per_second: 0, eta_seconds: 0 };
  assert.throws(() => parseEvent('kpcoord', 'kpcoord.demo.progress', encode(bad), 'message 7'), (err: Error) => {
    assert.ok(err instanceof EventError);
    assert.match(err.message, /message 7 \(kpcoord\.demo\.progress\): time: .*; step: /u);
    return true;
  });
  const failed = { v: 1, run: 'demo', seq: 0, time: new Date(0).toISOString(), event: 'failed', reason: 'x' };
  assert.equal(parseEvent('kpcoord', 'kpcoord.demo.lifecycle', encode(failed), 'm').kind, 'lifecycle');
  assert.throws(() => parseEvent('kpcoord', 'kpcoord.demo.lifecycle', encode({ ...failed, v: 2 }), 'm'), /: v: /u);
  assert.throws(() => parseEvent('kpcoord', 'kpcoord.demo.lifecycle', encode({ ...failed, event: 'exploded' }), 'm'), /: event: /u);
  assert.throws(() => parseEvent('kpcoord', 'kpcoord.demo.lifecycle', new TextEncoder().encode('{'), 'm'), /not JSON/u);
  assert.throws(() => parseEvent('kpcoord', 'other.demo.lifecycle', encode({}), 'm'), /not a kp-coord event subject/u);
});

test('subjects: prefix with dots, run and kind', () => {
  assert.deepEqual(parseSubject('kp.test', 'kp.test.r-1.eval'), { run: 'r-1', kind: 'eval' });
  assert.equal(parseSubject('kp.test', 'kp.test.r-1.other'), null);
  assert.equal(parseSubject('kp', 'kp.a.b.progress'), null);
});
