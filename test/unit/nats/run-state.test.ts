import assert from 'node:assert/strict';
import test from 'node:test';
import { applyEvent, emptyRunState, isEnded } from '../../../coordinator/nats/run-state.js';
import { formatRunState, formatRunTable } from '../../../coordinator/nats/status-format.js';
import type { KpcoordEvent } from '../../../shared/events/events-v1.js';

const env = (seq: number) => ({ v: 1 as const, run: 'demo', seq, time: new Date(seq * 1000).toISOString() });

test('a run state folds lifecycle, progress and eval events in order', () => {
  const events: KpcoordEvent[] = [
    { kind: 'lifecycle', event: { ...env(0), event: 'worker_joined', rank: 1, host: 'b', pid: 2, worker_id: 'w1' } },
    { kind: 'lifecycle', event: { ...env(1), event: 'worker_joined', rank: 0, host: 'a', pid: 1, worker_id: 'w0' } },
    { kind: 'lifecycle', event: { ...env(2), event: 'run_started', config: { model: 'm', world: 2, zero_stage: 1, total_steps: 10, global_batch_size: 8, learning_rate: 1e-3, lr_scheduler_type: 'linear', seed: 1, output_dir: '/o' } } },
    { kind: 'progress', event: { ...env(3), step: 4, total_steps: 10, epoch: 0, loss: 2.5, lr: 1e-3, grad_norm: 1, samples_per_second: 3, tokens_per_second: 300, eta_seconds: 12 } },
    { kind: 'eval', event: { ...env(4), step: 4, epoch: 0, eval_loss: 2.7, best_eval_loss: 2.6, is_best: false, patience_left: 1 } },
    { kind: 'lifecycle', event: { ...env(5), event: 'checkpoint_saved', step: 4, dir: '/o/ck-4' } },
    { kind: 'lifecycle', event: { ...env(6), event: 'events_dropped', progress: 3, eval: 0, lifecycle: 0 } },
  ];
  const s = emptyRunState('demo');
  for (const e of events) applyEvent(s, e);
  assert.equal(s.phase, 'training');
  assert.equal(isEnded(s), false);
  assert.deepEqual([s.step, s.total_steps, s.loss, s.last_eval_loss, s.best_eval_loss, s.patience_left, s.eta_seconds], [4, 10, 2.5, 2.7, 2.6, 1, 12]);
  assert.deepEqual(s.workers.map((w) => w.rank), [0, 1]);
  assert.deepEqual(s.last_checkpoint, { step: 4, dir: '/o/ck-4' });
  assert.equal(s.dropped.progress, 3);
  assert.match(formatRunState(s), /step 4\/10 .*loss 2\.5000 .*ETA 0m12s[\s\S]*best 2\.6000[\s\S]*workers \(2\): 0=a:1 1=b:2[\s\S]*3 progress/u);
  assert.match(formatRunTable([s]), /^RUN +PHASE.*\ndemo +training +4\/10 +2\.5000 +2\.6000 +2 /u);

  applyEvent(s, { kind: 'lifecycle', event: { ...env(7), event: 'failed', reason: 'worker 1 lost' } });
  assert.deepEqual([s.phase, s.failure, isEnded(s)], ['failed', 'worker 1 lost', true]);
});

test('Ctrl-C on start reads as interrupted on NATS, as in run.json, not as a failure', async () => {
  const { EventMapper } = await import('../../../coordinator/nats/event-mapper.js');
  const { LifecycleEventSchema } = await import('../../../shared/events/events-v1.js');
  const out = new EventMapper({ model: 'm', global_batch_size: 8, learning_rate: 1e-3, lr_scheduler_type: 'linear', seed: 1, output_dir: '/o' }).map({ type: 'interrupted', reason: 'stopped with Ctrl-C (SIGINT/SIGTERM)' });
  assert.ok(out && out.kind === 'lifecycle');
  const event = LifecycleEventSchema.parse({ ...env(3), ...out.body });
  const s = emptyRunState('demo');
  applyEvent(s, { kind: 'lifecycle', event });
  assert.deepEqual([s.phase, s.failure, isEnded(s)], ['interrupted', null, true]);
  assert.match(formatRunState(s), /^run demo: interrupted$/mu);
});
