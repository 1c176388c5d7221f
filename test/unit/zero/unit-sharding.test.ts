import test from 'node:test';
import assert from 'node:assert/strict';
import { gatherSchedule, type GatherSettings } from '../../../shared/sharding/gather-schedule.js';
import { UnitSharding } from '../../../shared/sharding/unit-shard.js';

// The pure parts of ZeRO stage 3: how units are cut into chunks, and the gather schedule.

test('unit sharding: each unit padded to N x 16 and cut in N chunks; the ranks together hold every element once', () => {
  // Units given in backward order (end of the flat buffer first), as the engine hands them out.
  const units = [{ lo: 130, hi: 200 }, { lo: 100, hi: 130 }, { lo: 0, hi: 100 }];
  for (const world of [1, 2, 3, 4]) {
    const seen = new Int32Array(200);
    const shards = Array.from({ length: world }, (_, r) => new UnitSharding(units, world, r));
    for (const s of shards) {
      assert.equal(s.shardSize, shards[0]!.shardSize);
      // Chunks in flat order, one after another in the shard buffer.
      assert.deepEqual(s.pieces.map((p) => p.unit), [2, 1, 0]);
      let at = 0;
      for (const p of s.pieces) {
        assert.equal(p.at, at);
        assert.equal(p.chunk * world, s.paddedSize(p.unit));
        assert.equal(s.paddedSize(p.unit) % (world * 16), 0);
        at += p.chunk;
        for (let i = p.lo; i < p.hi; i++) seen[i]!++;
        const u = units[p.unit]!;
        assert.equal(p.lo, Math.min(u.lo + s.rank * p.chunk, u.hi));
      }
      assert.equal(at, s.shardSize);
    }
    assert.ok(seen.every((c) => c === 1), `world ${world}: an element is owned ${Math.min(...seen)}..${Math.max(...seen)} times`);
  }
  // packOwned / ownedRanges agree: the real elements of the chunks, in shard order.
  const s = new UnitSharding(units, 4, 3);
  const buf = Float32Array.from({ length: s.shardSize }, (_, i) => i);
  const ranges = s.ownedRanges();
  assert.equal(s.packOwned(buf).length, ranges.reduce((n, r) => n + r.end - r.start, 0));
  assert.throws(() => new UnitSharding(units, 2, 2), /rank 2 of 2/);
});

const size = (u: number) => [100, 10, 50, 50, 1000][u]!;
const KEEP: GatherSettings = { prefetchBucketSize: 0, maxLiveParameters: 1e9, maxReuseDistance: 1e9 };
const DROP: GatherSettings = { ...KEEP, maxReuseDistance: 0 };

test('gather schedule: reuse distance decides what is gathered again; persistent units are handed out once a pass', () => {
  // embed(4) enc(2) enc(3) head(1, 4) | backward head(1, 4) enc(3) enc(2) embed(4)
  const trace = [[4], [2], [3], [1, 4], [3], [2], [4]];
  const keep = gatherSchedule(trace, size, new Set(), KEEP);
  assert.deepEqual(keep.fetch, [[4], [2], [3], [1], [], [], []]);
  assert.deepEqual(keep.freeAfter, [[], [], [], [1], [3], [2], [4]]);
  assert.equal(keep.peakHeld, 1000 + 50 + 50 + 10);

  const drop = gatherSchedule(trace, size, new Set(), DROP);
  // Unit 4 is used at positions 3 and 6 with 100 elements (units 3 and 2) in between: dropped at distance 0...
  assert.deepEqual(drop.fetch, [[4], [2], [3], [1, 4], [3], [2], [4]]);
  assert.deepEqual(drop.freeAfter, [[4], [2], [3], [1, 4], [3], [2], [4]]);
  assert.equal(drop.peakHeld, 1010);
  // ...and kept when the distance allows exactly those 100 elements.
  const some = gatherSchedule(trace, size, new Set(), { ...DROP, maxReuseDistance: 100 });
  assert.deepEqual(some.fetch[6], []);
  // Back-to-back uses (nothing in between: distance 0) keep the unit even at reuse distance 0.
  assert.deepEqual(gatherSchedule([[0], [0], [1]], size, new Set(), DROP).fetch, [[0], [], [1]]);

  // Persistent units (1): fetched (a copy of the whole unit) at their first use, dropped at the end.
  const persistent = gatherSchedule(trace, size, new Set([1]), DROP);
  assert.deepEqual(persistent.fetch[3], [1, 4]);
  assert.deepEqual(persistent.freeAfter[3], [4]);
  assert.deepEqual(persistent.freeAfter[6], [1, 4]);
  assert.equal(persistent.peakHeld, 1000, 'persistent units are not counted as gathered');
});
