import test from 'node:test';
import assert from 'node:assert/strict';
import { EarlyStopping } from '../../../coordinator/early-stopping.js';

const run = (es: EarlyStopping, losses: number[]) => losses.map((l, i) => es.evaluate(l, (i + 1) * 10));

test('stops after `patience` evaluations without improvement, at the right one', () => {
  const out = run(new EarlyStopping(3), [5, 4, 4.5, 4.2, 4.1, 3.9]);
  // (The run stops at 4.1; had it gone on, 3.9 would reset the counter.)
  assert.deepEqual(out.map((o) => o.shouldStop), [false, false, false, false, true, false]);
  assert.deepEqual(out.map((o) => o.patienceLeft), [3, 3, 2, 1, 0, 3]);
  assert.equal(out[4]!.best, 4);
  assert.equal(out[4]!.bestStep, 20);
});

test('an improvement resets patience; the threshold decides what counts (HF semantics)', () => {
  // 4.0 -> 3.995 improves by 0.005 <= 0.01: counted as no improvement, yet it becomes the best.
  const out = run(new EarlyStopping(2, 0.01), [4.0, 3.995, 3.99, 3.5, 3.6, 3.7]);
  assert.deepEqual(out.map((o) => o.isBest), [true, true, true, true, false, false]);
  // 3.99 vs best 3.995: 0.005 again -> counter 2 -> stop at the third evaluation.
  assert.deepEqual(out.map((o) => o.shouldStop), [false, false, true, false, false, true]);
  assert.equal(out[2]!.best, 3.99);
});

test('without patience it only tracks the best; equal values are not improvements', () => {
  const out = run(new EarlyStopping(null), [3, 3, 2, 2.5]);
  assert.deepEqual(out.map((o) => [o.isBest, o.shouldStop, o.patienceLeft]), [[true, false, null], [false, false, null], [true, false, null], [false, false, null]]);
  assert.throws(() => new EarlyStopping(0), /positive integer/);
  assert.throws(() => new EarlyStopping(1).evaluate(Number.NaN, 1), /NaN/);
});
