import test from 'node:test';
import assert from 'node:assert/strict';
import { paddedFlatSize } from '../../../shared/sharding/flat-shard.js';
import { CollectiveError } from '../../../shared/errors.js';
import { inProcessTransports, type InProcessOptions } from '../../../worker/collectives/in-process-transport.js';
import { RingCollective } from '../../../worker/collectives/ring-collective.js';
import { starAllReduce } from '../../../worker/collectives/star-all-reduce.js';
import { float64Sum, rankBuffer, ringOrderSum } from '../../helpers/collective-buffers.js';

// The ring on N in-process ranks: sums against float64, summation order bit for bit, traffic
// against the (N-1)/N bound, timing independence, tag separation, failures.

function ring(world: number, options: InProcessOptions = {}, timeoutMs = 5000): RingCollective[] {
  return inProcessTransports(world, { pieceElements: 7, ...options }).map((t) => new RingCollective(t, { timeoutMs }));
}

function inputs(world: number, length: number, seed = 11): Float32Array[] {
  return Array.from({ length: world }, (_, r) => rankBuffer(seed, r, world, length));
}

/** Seeded 0..3 ms delays: every run a different interleaving of sends and receives. */
function jitter(seed: number): InProcessOptions['delayMs'] {
  let s = seed;
  return () => ((s = (s * 16807) % 2147483647) % 4);
}

/**
 * Recursive float32 summation of N terms errs by at most gamma_(N-1) * sum|x| with
 * gamma_k = k u / (1 - k u), u = 2^-24 (Higham, Accuracy and Stability, 4.2); the inputs are exact
 * float32 values, so that is the whole error against the float64 sum (itself exact here to far
 * below this bound: at most 5 terms spanning 2^-6..2^6).
 */
function assertNearFloat64(got: Float32Array, ins: Float32Array[], start: number, end: number, label: string): void {
  const { sum, abs } = float64Sum(ins.map((x) => x.subarray(start, end)));
  const k = ins.length - 1;
  const gamma = (k * 2 ** -24) / (1 - k * 2 ** -24);
  for (let i = 0; i < sum.length; i++) {
    const err = Math.abs(got[i]! - sum[i]!);
    if (err > gamma * abs[i]! + 1e-300) assert.fail(`${label}: element ${start + i}: ${got[i]} vs float64 ${sum[i]} (error ${err} > bound ${gamma * abs[i]!})`);
  }
}

for (let world = 1; world <= 5; world++) {
  test(`ring allReduce, N=${world}: float64-close, in the documented order bit for bit, (N-1)/N traffic per phase`, async () => {
    const length = paddedFlatSize(3000 + 37 * world, world);
    const range = length / world;
    const ins = inputs(world, length);
    const bufs = ins.map((x) => x.slice());
    const ranks = ring(world);
    await Promise.all(ranks.map((c, r) => c.allReduce(bufs[r]!, 'step-1/grads')));
    for (let owner = 0; owner < world; owner++) {
      const [start, end] = [owner * range, (owner + 1) * range];
      const want = world === 1 ? ins[0]!.slice(start, end) : ringOrderSum(ins, start, end, owner);
      for (let r = 0; r < world; r++) assert.deepEqual(bufs[r]!.subarray(start, end), want, `rank ${r}, range ${owner}`);
      assertNearFloat64(bufs[0]!.subarray(start, end), ins, start, end, `range ${owner}`);
    }
    for (const c of ranks) assert.equal(c.bytesSent, (2 * (world - 1) * length * 4) / world);
  });
}

test('reduceScatter leaves the own range summed and sends (N-1)/N of the buffer; allGather restores every range', async () => {
  const world = 4;
  const length = paddedFlatSize(5000, world);
  const range = length / world;
  const ins = inputs(world, length, 5);
  const bufs = ins.map((x) => x.slice());
  const ranks = ring(world);
  await Promise.all(ranks.map((c, r) => c.reduceScatter(bufs[r]!, 'rs')));
  for (let r = 0; r < world; r++) {
    assert.deepEqual(bufs[r]!.subarray(r * range, (r + 1) * range), ringOrderSum(ins, r * range, (r + 1) * range, r));
    assert.equal(ranks[r]!.bytesSent, ((world - 1) * length * 4) / world);
  }
  // Poison everything but the own range: all-gather must overwrite it with the owners' values.
  const owned = bufs.map((b, r) => b.slice(r * range, (r + 1) * range));
  bufs.forEach((b, r) => {
    b.fill(Number.NaN);
    b.set(owned[r]!, r * range);
  });
  await Promise.all(ranks.map((c, r) => c.allGather(bufs[r]!, 'ag')));
  for (let r = 0; r < world; r++) for (let o = 0; o < world; o++) assert.deepEqual(bufs[r]!.subarray(o * range, (o + 1) * range), owned[o], `rank ${r}, range ${o}`);
});

test('results are bit-identical whatever the timing (two runs with different random delays)', async () => {
  const world = 5;
  const length = paddedFlatSize(4000, world);
  const ins = inputs(world, length, 99);
  const results: Float32Array[][] = [];
  for (const seed of [1, 777]) {
    const bufs = ins.map((x) => x.slice());
    const ranks = ring(world, { delayMs: jitter(seed), pieceElements: seed === 1 ? 5 : 64 });
    await Promise.all(ranks.map((c, r) => c.allReduce(bufs[r]!, 'jitter')));
    results.push(bufs);
  }
  for (let r = 0; r < world; r++) assert.deepEqual(results[0]![r], results[1]![r]);
});

test('concurrent operations with different tags never mix', async () => {
  const world = 3;
  const length = paddedFlatSize(900, world);
  const a = inputs(world, length, 1);
  const b = inputs(world, length, 2);
  const [bufA, bufB] = [a.map((x) => x.slice()), b.map((x) => x.slice())];
  const ranks = ring(world, { delayMs: jitter(3) });
  await Promise.all(ranks.flatMap((c, r) => [c.allReduce(bufA[r]!, 'step-7/grads'), c.allReduce(bufB[r]!, 'step-7/params')]));
  const [refA, refB] = [a.map((x) => x.slice()), b.map((x) => x.slice())];
  const fresh = ring(world);
  await Promise.all(fresh.map((c, r) => c.allReduce(refA[r]!, 'x')));
  await Promise.all(fresh.map((c, r) => c.allReduce(refB[r]!, 'y')));
  for (let r = 0; r < world; r++) {
    assert.deepEqual(bufA[r], refA[r]);
    assert.deepEqual(bufB[r], refB[r]);
  }
});

test('bad calls: unpadded length, a tag already running, a missing peer times out', async () => {
  const ranks = ring(3, {}, 200);
  await assert.rejects(ranks[0]!.allReduce(new Float32Array(50), 't'), /buffer length 50 is not a padded flat size \(a multiple of world 3 x 16\)/);
  const buf = new Float32Array(48);
  const first = ranks[0]!.reduceScatter(buf, 'dup');
  await assert.rejects(ranks[0]!.reduceScatter(buf, 'dup'), /collective "dup" is already running/);
  // Ranks 1 and 2 never join: rank 0 times out, naming the step.
  await assert.rejects(first, (e: unknown) => e instanceof CollectiveError && /rank 0\/3: reduce-scatter "dup" failed at step 0: timed out after 200 ms/.test(e.message));
});

test('star baseline (rank 0 sums in rank order, sends back) agrees with float64 and costs N-1 buffers at rank 0', async () => {
  const world = 4;
  const length = paddedFlatSize(2000, world);
  const ins = inputs(world, length, 4);
  const bufs = ins.map((x) => x.slice());
  const transports = inProcessTransports(world, { pieceElements: 100 });
  await Promise.all(transports.map((t, r) => starAllReduce(t, bufs[r]!, 'star', 5000)));
  for (let r = 1; r < world; r++) assert.deepEqual(bufs[r], bufs[0]);
  assertNearFloat64(bufs[0]!, ins, 0, length, 'star');
  assert.equal(transports[0]!.bytesSent, (world - 1) * length * 4);
  assert.equal(transports[1]!.bytesSent, length * 4);
});
