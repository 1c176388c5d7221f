import test from 'node:test';
import assert from 'node:assert/strict';
import { paddedFlatSize } from '../../../shared/sharding/flat-shard.js';
import { CollectiveError } from '../../../shared/errors.js';
import type { ChunkKey, ChunkTransport, Combine } from '../../../worker/collectives/chunk-transport.js';
import { inProcessTransports, type InProcessOptions } from '../../../worker/collectives/in-process-transport.js';
import { RingCollective } from '../../../worker/collectives/ring-collective.js';
import { StarCollective } from '../../../worker/collectives/star-collective.js';
import { rankBuffer, ringOrderSum } from '../../helpers/collective-buffers.js';

// reduceScatterRange (ZeRO-2 gradient buckets): any partition of the padded buffer into contiguous
// pieces, reduced piece by piece, must give each rank's own range the same bits as one
// reduceScatter of the whole buffer, at the same total traffic, with no zero-length messages.

/** Forwards to a transport and records every chunk length it sends or receives. */
class CountingTransport implements ChunkTransport {
  readonly sent: number[] = [];
  readonly received: number[] = [];
  constructor(private readonly inner: ChunkTransport) {}
  get rank(): number {
    return this.inner.rank;
  }
  get world(): number {
    return this.inner.world;
  }
  get bytesSent(): number {
    return this.inner.bytesSent;
  }
  send(to: number, key: ChunkKey, chunk: Float32Array, signal: AbortSignal): Promise<void> {
    this.sent.push(chunk.length);
    return this.inner.send(to, key, chunk, signal);
  }
  receive(from: number, key: ChunkKey, target: Float32Array, combine: Combine, signal: AbortSignal): Promise<void> {
    this.received.push(target.length);
    return this.inner.receive(from, key, target, combine, signal);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

function ring(world: number, options: InProcessOptions = {}, timeoutMs = 5000): { ranks: RingCollective[]; counts: CountingTransport[] } {
  const counts = inProcessTransports(world, { pieceElements: 7, ...options }).map((t) => new CountingTransport(t));
  return { ranks: counts.map((t) => new RingCollective(t, { timeoutMs })), counts };
}

/** Seeded 0..3 ms delays: every run a different interleaving of sends and receives. */
function jitter(seed: number): InProcessOptions['delayMs'] {
  let s = seed;
  return () => ((s = (s * 16807) % 2147483647) % 4);
}

/** The bits of a float32 array: equal bits, not merely equal values (-0 vs 0, NaN payloads). */
function bits(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset, x.length);
}

interface Piece {
  readonly offset: number;
  readonly length: number;
}

/**
 * Random contiguous pieces covering [0, length), alternately shorter than half a range and between
 * half a range and 2.5 ranges (so many cross one or more range boundaries).
 */
function randomPieces(length: number, range: number, seed: number): Piece[] {
  let s = seed;
  const next = (n: number): number => (s = (s * 48271) % 2147483647) % n;
  const pieces: Piece[] = [];
  for (let at = 0; at < length; ) {
    const size = pieces.length % 2 === 0 ? 1 + next(range >> 1) : (range >> 1) + next(2 * range);
    const end = Math.min(length, at + size);
    pieces.push({ offset: at, length: end - at });
    at = end;
  }
  return pieces;
}

/** The partitions each world size is tested with; every kind of piece the brief names occurs. */
function partitions(length: number, world: number): Record<string, Piece[]> {
  const range = length / world;
  const aligned = Array.from({ length: world }, (_, c) => ({ offset: c * range, length: range }));
  // Halves of ranges, then pieces straddling each boundary by a few elements each way.
  const halves = Array.from({ length: 2 * world }, (_, k) => ({ offset: (k * range) / 2, length: range / 2 }));
  const cuts = [0, ...Array.from({ length: world - 1 }, (_, c) => (c + 1) * range + (c % 2 === 0 ? -3 : 5)), length];
  const straddling = cuts.slice(1).map((end, k) => ({ offset: cuts[k]!, length: end - cuts[k]! }));
  return {
    whole: [{ offset: 0, length }],
    aligned,
    halves,
    straddling,
    random: randomPieces(length, range, 1000 + world),
    random2: randomPieces(length, range, 7 + 31 * world),
  };
}

/** Rank r's part of piece p: how many floats of it lie in rank c's range. */
function overlap(p: Piece, c: number, range: number): number {
  return Math.max(0, Math.min(p.offset + p.length, (c + 1) * range) - Math.max(p.offset, c * range));
}

for (let world = 1; world <= 5; world++) {
  test(`reduceScatterRange, N=${world}: any partition, concurrent or sequential, gives the full reduceScatter's own range bit for bit`, async () => {
    const length = paddedFlatSize(900 + 53 * world, world);
    const range = length / world;
    const ins = Array.from({ length: world }, (_, r) => rankBuffer(13, r, world, length));
    const want = ins.map((x) => x.slice());
    await Promise.all(ring(world).ranks.map((c, r) => c.reduceScatter(want[r]!, 'full')));
    // The reference itself is in the documented order (ring-collective.ts, note on summation order).
    for (let r = 0; world > 1 && r < world; r++) {
      assert.deepEqual(bits(want[r]!.subarray(r * range, (r + 1) * range)), bits(ringOrderSum(ins, r * range, (r + 1) * range, r)));
    }

    const all = partitions(length, world);
    const random = all['random']!;
    assert.ok(random.some((p) => p.length < range), 'some piece is shorter than a range');
    if (world > 1) assert.ok(random.some((p) => Math.floor(p.offset / range) !== Math.floor((p.offset + p.length - 1) / range)), 'some piece crosses a range boundary');
    for (const [name, pieces] of Object.entries(all)) {
      // Descending offsets, as the backward pass produces the buckets.
      const order = [...pieces].sort((a, b) => b.offset - a.offset);
      for (const mode of ['concurrent', 'sequential'] as const) {
        const label = `${name} (${pieces.length} pieces), ${mode}`;
        const bufs = ins.map((x) => x.slice());
        const { ranks } = ring(world, { delayMs: jitter(world * 100 + pieces.length) });
        const call = (r: number, p: Piece, k: number): Promise<void> =>
          ranks[r]!.reduceScatterRange(bufs[r]!.subarray(p.offset, p.offset + p.length), p.offset, length, `step-2/grads/${name}/${k}`);
        if (mode === 'concurrent') {
          // Each rank issues every piece before awaiting any, as a backward pass with hooks would.
          const pending: Promise<void>[] = [];
          for (let r = 0; r < world; r++) order.forEach((p, k) => pending.push(call(r, p, k)));
          await Promise.all(pending);
        } else {
          for (const [k, p] of order.entries()) {
            const before = ranks.map((c) => c.bytesSent);
            await Promise.all(ranks.map((_, r) => call(r, p, k)));
            // Per piece: every part of it outside the sender's own range goes out exactly once.
            for (let r = 0; r < world; r++) assert.equal(ranks[r]!.bytesSent - before[r]!, 4 * (p.length - overlap(p, r, range)), `${label}: bytes of piece at ${p.offset}, rank ${r}`);
          }
        }
        for (let r = 0; r < world; r++) {
          const own = [r * range, (r + 1) * range] as const;
          assert.deepEqual(bits(bufs[r]!.subarray(...own)), bits(want[r]!.subarray(...own)), `${label}: rank ${r}'s own range`);
        }
      }
    }
  });
}

test('reduceScatterRange traffic: pieces covering the buffer cost each rank (N-1)/N of it, like reduceScatter, with no empty messages', async () => {
  for (let world = 1; world <= 5; world++) {
    const length = paddedFlatSize(700 + 29 * world, world);
    const ins = Array.from({ length: world }, (_, r) => rankBuffer(5, r, world, length));
    const full = ring(world);
    await Promise.all(full.ranks.map((c, r) => c.reduceScatter(ins[r]!.slice(), 'full')));
    for (const [name, pieces] of Object.entries(partitions(length, world))) {
      const { ranks, counts } = ring(world, { delayMs: jitter(world) });
      const bufs = ins.map((x) => x.slice());
      await Promise.all(ranks.flatMap((c, r) => pieces.map((p, k) => c.reduceScatterRange(bufs[r]!.subarray(p.offset, p.offset + p.length), p.offset, length, `t/${k}`))));
      for (let r = 0; r < world; r++) {
        const label = `N=${world}, ${name}, rank ${r}`;
        assert.equal(ranks[r]!.bytesSent, ((world - 1) * length * 4) / world, label);
        assert.equal(ranks[r]!.bytesSent, full.ranks[r]!.bytesSent, label);
        assert.ok(counts[r]!.sent.every((n) => n > 0) && counts[r]!.received.every((n) => n > 0), `${label}: no zero-length message`);
      }
    }
  }
});

test('reduceScatterRange bad calls: a non-padded length, a piece outside the buffer, a tag already running, the star baseline', async () => {
  const { ranks } = ring(3, {}, 200);
  const c = ranks[0]!;
  const piece = new Float32Array(16);
  await assert.rejects(c.reduceScatterRange(piece, 0, 50, 't'), (e: unknown) => e instanceof RangeError && /collective "t": paddedLength 50 is not a padded flat size \(a multiple of world 3 x 16\)/.test(e.message));
  await assert.rejects(c.reduceScatterRange(piece, 0, 32, 't'), /paddedLength 32 is not a padded flat size/);
  await assert.rejects(c.reduceScatterRange(piece, 0, Number.NaN, 't'), /paddedLength NaN is not a padded flat size/);
  await assert.rejects(c.reduceScatterRange(piece, 40, 48, 't'), (e: unknown) => e instanceof RangeError && /collective "t": piece \[40, 56\) is not inside the padded buffer \[0, 48\)/.test(e.message));
  await assert.rejects(c.reduceScatterRange(piece, -1, 48, 't'), /piece \[-1, 15\) is not inside the padded buffer \[0, 48\)/);
  await assert.rejects(c.reduceScatterRange(piece, 1.5, 48, 't'), /piece \[1.5, 17.5\) is not inside the padded buffer/);
  // An empty piece is valid and moves nothing.
  await c.reduceScatterRange(new Float32Array(0), 48, 48, 'empty');
  assert.equal(c.bytesSent, 0);

  // The tag guard is shared with reduceScatter: both would use the same (tag, phase, step) keys.
  const running = c.reduceScatterRange(new Float32Array(48), 0, 48, 'dup');
  await assert.rejects(c.reduceScatterRange(piece, 0, 48, 'dup'), /collective "dup" is already running/);
  await assert.rejects(c.reduceScatter(new Float32Array(48), 'dup'), /collective "dup" is already running/);
  // Ranks 1 and 2 never join: rank 0 times out, naming the piece and the step.
  await assert.rejects(running, (e: unknown) => e instanceof CollectiveError && /rank 0\/3: reduce-scatter of \[0, 48\) "dup" failed at step 0: timed out after 200 ms/.test(e.message));

  const star = new StarCollective(inProcessTransports(2)[0]!);
  await assert.rejects(star.reduceScatterRange(), (e: unknown) => e instanceof CollectiveError && /star baseline runs ZeRO stage 0 only/.test(e.message));
});
