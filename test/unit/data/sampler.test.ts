import assert from 'node:assert/strict';
import test from 'node:test';
import { balancedPart, DistributedSampler, epochPadding, type SamplerOptions } from '../../../shared/data/sampler.js';
import { rngStream } from '../../../shared/random.js';

/** Every micro-batch of one epoch, as [step, rank, indices]. */
function epochMicroBatches(s: DistributedSampler, epoch: number): Array<[number, number, number[]]> {
  const out: Array<[number, number, number[]]> = [];
  for (let step = 0; step < s.stepsPerEpoch; step++) {
    for (let rank = 0; rank < s.world; rank++) for (const mb of s.microBatches(epoch, step, rank)) out.push([step, rank, [...mb]]);
  }
  return out;
}

function randomLengths(n: number, seed: number): Int32Array {
  const r = rngStream(seed, 7);
  return Int32Array.from({ length: n }, () => 500 + Math.floor(r.uniform() * 500));
}

const SIZES = [1, 2, 7, 23, 60, 101];

test('every sample exactly once per epoch across all ranks, for world 1..5 and uneven sizes', () => {
  for (const size of SIZES) {
    for (let world = 1; world <= 5; world++) {
      for (const [perDeviceBatch, gradAccum] of [[1, 1], [3, 1], [2, 3]] as const) {
        for (const bucketing of [undefined, { windowBatches: 2, lengths: randomLengths(size, size) }]) {
          const s = new DistributedSampler({ size, seed: 42, perDeviceBatch, gradAccum, world, ...(bucketing ? { bucketing } : {}) });
          const G = perDeviceBatch * gradAccum * world;
          assert.equal(s.stepsPerEpoch, Math.ceil(size / G));
          for (const epoch of [0, 1]) {
            const seen = new Int32Array(size);
            for (const [, , mb] of epochMicroBatches(s, epoch)) {
              // Empty only where a rank's share is smaller than the largest (see the uneven case below).
              assert.ok(mb.length >= 0 && mb.length <= perDeviceBatch, 'micro-batch size');
              for (const i of mb) seen[i]!++;
            }
            for (let step = 0; step < s.stepsPerEpoch; step++) {
              const counts = Array.from({ length: world }, (_, r) => s.microBatches(epoch, step, r).length);
              assert.ok(counts.every((c) => c === counts[0]), `step ${step}: micro-batch counts ${counts.join(', ')} differ across ranks`);
            }
            assert.ok(seen.every((c) => c === 1), `size ${size} world ${world} pd ${perDeviceBatch} ga ${gradAccum} bucketing ${!!bucketing} epoch ${epoch}`);
            // One rank's pass over the epoch (eval and generation use it) is its micro-batches in step order.
            for (let rank = 0; rank < world; rank++) {
              const mine = epochMicroBatches(s, epoch).filter(([, r]) => r === rank).map(([, , mb]) => mb);
              assert.deepEqual(s.epochMicroBatches(epoch, rank).map((mb) => [...mb]), mine);
            }
          }
        }
      }
    }
  }
});

test('full batches: each rank runs grad_accum micro-batches of per_device_batch; the short last batch is balanced', () => {
  const s = new DistributedSampler({ size: 100, seed: 1, perDeviceBatch: 4, gradAccum: 2, world: 3 }); // G = 24
  assert.equal(s.globalBatchSize, 24);
  assert.equal(s.stepsPerEpoch, 5);
  for (let step = 0; step < 4; step++) {
    for (let rank = 0; rank < 3; rank++) assert.deepEqual(s.microBatches(0, step, rank).map((m) => m.length), [4, 4]);
  }
  // Last batch: 100 - 96 = 4 samples over 3 ranks -> 2, 1, 1.
  assert.deepEqual([0, 1, 2].map((r) => s.rankShare(0, 4, r).length), [2, 1, 1]);
  const tiny = new DistributedSampler({ size: 2, seed: 1, perDeviceBatch: 4, gradAccum: 2, world: 3 });
  assert.deepEqual(tiny.microBatches(0, 0, 2).map((m) => m.length), [0], 'an empty share runs one empty micro-batch, as its peers run one');
  // Every rank runs the same number of micro-batches, the largest share's (ZeRO-2/3 reduce once
  // per micro-batch on every rank): shares 4 and 3 with micro-batches of 1 -> 4 each.
  const uneven = new DistributedSampler({ size: 15, seed: 1, perDeviceBatch: 1, gradAccum: 4, world: 2 });
  assert.deepEqual([0, 1].map((r) => uneven.microBatches(0, 1, r).map((m) => m.length)), [[1, 1, 1, 1], [1, 1, 1, 0]]);
  assert.deepEqual([0, 1, 2, 3, 4].map((k) => balancedPart(13, 5, k)), [
    { start: 0, length: 3 },
    { start: 3, length: 3 },
    { start: 6, length: 3 },
    { start: 9, length: 2 },
    { start: 11, length: 2 },
  ]);
});

test('drop_last skips the permutation tail: each used sample once, the rest none', () => {
  const s = new DistributedSampler({ size: 50, seed: 3, perDeviceBatch: 2, gradAccum: 2, world: 3, dropLast: true, bucketing: { windowBatches: 2, lengths: randomLengths(50, 1) } });
  assert.equal(s.stepsPerEpoch, 4);
  const seen = new Int32Array(50);
  for (const [, , mb] of epochMicroBatches(s, 0)) for (const i of mb) seen[i]!++;
  const order = s.epochOrder(0);
  assert.ok([...order.subarray(0, 48)].every((i) => seen[i] === 1));
  assert.ok([...order.subarray(48)].every((i) => seen[i] === 0));
  // Without bucketing the dropped tail is the same permutation tail.
  const plain = new DistributedSampler({ size: 50, seed: 3, perDeviceBatch: 2, gradAccum: 2, world: 3, dropLast: true });
  assert.deepEqual(new Set(plain.epochOrder(0).subarray(48)), new Set(order.subarray(48)));
});

test('deterministic from (seed, epoch); a new epoch or seed reshuffles; eval order can stay put', () => {
  const o: SamplerOptions = { size: 200, seed: 7, perDeviceBatch: 2, gradAccum: 1, world: 2 };
  const a = new DistributedSampler(o);
  const b = new DistributedSampler(o);
  assert.deepEqual(a.epochOrder(3), b.epochOrder(3));
  assert.notDeepEqual([...a.epochOrder(0)], [...a.epochOrder(1)]);
  assert.notDeepEqual([...a.epochOrder(0)], [...new DistributedSampler({ ...o, seed: 8 }).epochOrder(0)]);
  assert.notDeepEqual([...a.epochOrder(0)], Array.from({ length: 200 }, (_, i) => i));
  const ev = new DistributedSampler({ ...o, shuffle: false });
  assert.deepEqual([...ev.epochOrder(5)], Array.from({ length: 200 }, (_, i) => i));
});

test('the same global batch gives the same steps whatever the world size', () => {
  const lengths = randomLengths(130, 5);
  // G = 12 three ways: 1 x 12 x 1, 2 x 3 x 2, 1 x 1 x 12 (per_device x accum x world).
  const shapes = [[12, 1, 1], [2, 3, 2], [1, 1, 12], [2, 2, 3]] as const;
  for (const bucketing of [undefined, { windowBatches: 3, lengths }]) {
    const steps = shapes.map(([perDeviceBatch, gradAccum, world]) => {
      const s = new DistributedSampler({ size: 130, seed: 11, perDeviceBatch, gradAccum, world, ...(bucketing ? { bucketing } : {}) });
      return Array.from({ length: s.stepsPerEpoch }, (_, step) => {
        const all: number[] = [];
        for (let r = 0; r < world; r++) for (const mb of s.microBatches(2, step, r)) all.push(...mb);
        return all;
      });
    });
    for (const other of steps.slice(1)) assert.deepEqual(other, steps[0]);
  }
});

test('length bucketing groups similar lengths and cuts padding; the epoch set stays exact', () => {
  const size = 2000;
  const lengths = randomLengths(size, 9);
  const o: SamplerOptions = { size, seed: 100, perDeviceBatch: 4, gradAccum: 2, world: 2 };
  const plain = new DistributedSampler(o);
  const bucketed = new DistributedSampler({ ...o, bucketing: { windowBatches: 50, lengths } });
  const p = epochPadding(plain, 0, lengths);
  const q = epochPadding(bucketed, 0, lengths);
  assert.equal(p.realTokens, q.realTokens);
  // Uniform lengths on [500, 1000): a micro-batch of 4 pads to its maximum, about 1/5 of the tensor
  // is padding (E[max of 4] = 900, mean 750 -> 1 - 750/900 ≈ 0.17); sorted windows of 800 samples
  // leave neighbours within ~2.5 tokens of each other.
  assert.ok(p.paddingShare > 0.1, `plain padding ${p.paddingShare}`);
  assert.ok(q.paddingShare < 0.01, `bucketed padding ${q.paddingShare}`);
  // Within each window the global batches hold disjoint length ranges (sorted, then batch order shuffled).
  const G = bucketed.globalBatchSize;
  for (let w = 0; w * 50 < bucketed.stepsPerEpoch; w++) {
    const ranges = [];
    for (let step = w * 50; step < Math.min((w + 1) * 50, bucketed.stepsPerEpoch); step++) {
      const b = [...bucketed.globalBatch(0, step)].map((i) => lengths[i]!);
      ranges.push([Math.min(...b), Math.max(...b)] as const);
      assert.ok(b.length <= G);
    }
    ranges.sort((x, y) => x[0] - y[0]);
    for (let k = 1; k < ranges.length; k++) assert.ok(ranges[k]![0] >= ranges[k - 1]![1]);
  }
  // The batch order inside a window is shuffled, not sorted by length.
  const firstWindow = Array.from({ length: 50 }, (_, step) => lengths[bucketed.globalBatch(0, step)[0]!]!);
  assert.notDeepEqual(firstWindow, [...firstWindow].sort((x, y) => x - y));
});

test('bad arguments are refused with the name and the allowed range', () => {
  const s = new DistributedSampler({ size: 10, seed: 0, perDeviceBatch: 2, gradAccum: 1, world: 2 });
  assert.throws(() => s.globalBatch(0, 3), /step 3 is outside 0\.\.2/u);
  assert.throws(() => s.rankShare(0, 0, 2), /rank 2 is outside 0\.\.1/u);
  assert.throws(() => s.epochOrder(-1), /epoch must be/u);
  assert.throws(() => new DistributedSampler({ size: 10, seed: 0, perDeviceBatch: 0, gradAccum: 1, world: 1 }), /per_device_batch/u);
  assert.throws(() => new DistributedSampler({ size: 10, seed: 0, perDeviceBatch: 1, gradAccum: 1, world: 1, bucketing: { windowBatches: 1, lengths: [1] } }), /1 lengths for 10 samples/u);
  assert.equal(new DistributedSampler({ size: 0, seed: 0, perDeviceBatch: 1, gradAccum: 1, world: 3 }).stepsPerEpoch, 0);
});
