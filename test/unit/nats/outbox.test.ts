import assert from 'node:assert/strict';
import test from 'node:test';
import type { OutgoingEvent } from '../../../coordinator/nats/event-mapper.js';
import { Outbox } from '../../../coordinator/nats/outbox.js';

const progress = (step: number, total = 100): OutgoingEvent => ({
  kind: 'progress',
  body: { step, total_steps: total, epoch: 0, loss: 1, lr: 1e-3, grad_norm: 1, samples_per_second: 1, tokens_per_second: 1, eta_seconds: 1 },
});
const saved = (step: number): OutgoingEvent => ({ kind: 'lifecycle', body: { event: 'checkpoint_saved', step, dir: `/ck/${step}` } });

function drain(o: Outbox): { seq: number; label: string }[] {
  const out: { seq: number; label: string }[] = [];
  for (let q = o.peek(); q; q = o.peek()) {
    out.push({ seq: q.seq, label: q.out.kind === 'progress' ? `p${q.out.body.step}` : q.out.kind === 'lifecycle' && q.out.body.event === 'checkpoint_saved' ? `c${q.out.body.step}` : q.out.kind });
    o.shift();
  }
  return out;
}

test('progress is throttled to one per interval; the newest held one goes out before a lifecycle event, and the last step always', () => {
  let now = 0;
  const o = new Outbox(100, 1000, () => now);
  o.push(progress(1)); // sent (first)
  now = 300;
  o.push(progress(2)); // held
  now = 600;
  o.push(progress(3)); // replaces 2
  o.push(saved(3)); // flushes 3, then itself
  now = 1100;
  o.push(progress(4)); // interval passed since step 1
  now = 1200;
  o.push(progress(100, 100)); // the last step, never throttled
  assert.deepEqual(drain(o).map((q) => q.label), ['p1', 'p3', 'c3', 'p4', 'p100']);
  assert.equal(o.throttled, 1);
});

test('interval 0 sends every step, with consecutive sequence numbers', () => {
  const o = new Outbox(100, 0, () => 0);
  for (let s = 1; s <= 5; s++) o.push(progress(s));
  assert.deepEqual(drain(o).map((q) => q.seq), [0, 1, 2, 3, 4]);
});

test('a full buffer drops the oldest progress first (never the head), then lifecycle, and counts each drop once', () => {
  const o = new Outbox(3, 0, () => 0);
  o.push(progress(1));
  o.push(progress(2));
  o.push(saved(2));
  o.push(saved(3)); // drops p2 (p1 is the head, maybe in flight)
  assert.deepEqual(o.dropped, { progress: 1, eval: 0, lifecycle: 0 });
  o.push(saved(4)); // no progress behind the head: drops c2
  assert.deepEqual(o.dropped, { progress: 1, eval: 0, lifecycle: 1 });
  assert.deepEqual(drain(o).map((q) => q.label), ['p1', 'c3', 'c4']);
  assert.deepEqual(o.takeUnreportedDrops(), { progress: 1, eval: 0, lifecycle: 1 });
  assert.equal(o.takeUnreportedDrops(), null);
});
