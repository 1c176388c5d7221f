import { t5Spec } from '../../../shared/models/model-spec.js';
import { T5Family } from '../../../shared/models/t5-family.js';
import test from 'node:test';
import assert from 'node:assert/strict';
import { EngineOptionsSchema } from '../../../shared/onnx/session-options.js';
import { ThreadedBlockEngine } from '../../../worker/engine/engine-thread.js';
import { BlockEngine } from '../../../worker/engine/block-engine.js';
import { paddedBatch, randomParams, tinyConfig } from './t5-helpers.js';

// The engine thread (overlap_comm): the same numbers as the block engine on the calling thread,
// the parameter buffer lent for each call and given back (even when the call fails), gradient
// units arriving in order while the thread computes, and failures reported with their cause.

const config = tinyConfig();
const options = { ...EngineOptionsSchema.parse({ intraOpThreads: 1 }), dtype: 'float32' as const, dropout: false, checkpointing: true };

test('engine thread: same loss and gradient bits as the block engine here; the parameters come back', async () => {
  const local = await BlockEngine.create(new T5Family(config), options);
  const threaded = await ThreadedBlockEngine.create(t5Spec(config), options);
  try {
    const params = randomParams(new Float32Array(local.paramCount + 16), 3);
    const copy = params.slice();
    const want = new Float32Array(local.paramCount);
    const wantLoss = await local.forwardBackward(params, paddedBatch(), undefined, (lo, _hi, g) => want.set(g, lo));

    const holder = { array: params };
    const got = new Float32Array(local.paramCount);
    const order: number[] = [];
    const loss = await threaded.forwardBackward(holder, paddedBatch(), undefined, async (lo, _hi, g) => {
      order.push(lo);
      got.set(g, lo);
      await new Promise((r) => setTimeout(r, 2)); // a slow reduce-scatter: the thread waits at two units in flight
    });
    assert.equal(params.length, 0, 'the caller\'s array was lent to the thread (detached)');
    assert.deepEqual(holder.array, copy, 'the holder got the same bytes back');
    assert.deepEqual(order, threaded.units.map((u) => u.lo));
    assert.equal(loss.lossSum, wantLoss.lossSum);
    assert.deepEqual(got, want);
    assert.ok(loss.computeEnd >= loss.computeStart);
    const evalLoss = await threaded.forwardLoss(holder, paddedBatch());
    assert.equal(evalLoss.lossSum, (await local.forwardLoss(copy, paddedBatch())).lossSum);
    assert.deepEqual(holder.array, copy);
    // Evaluation sessions freed, then made again on the next evaluation.
    await threaded.releaseEvaluation();
    assert.equal((await threaded.forwardLoss(holder, paddedBatch())).lossSum, evalLoss.lossSum);
  } finally {
    await local.release();
    await threaded.release();
  }
});

test('engine thread: a bad batch fails with the engine\'s message and the parameters still come back; a failing sink fails the call', async () => {
  const threaded = await ThreadedBlockEngine.create(t5Spec(config), options);
  try {
    const holder = { array: randomParams(new Float32Array(threaded.paramCount), 4) };
    const copy = holder.array.slice();
    const bad = paddedBatch();
    bad.inputIds[3] = 999;
    await assert.rejects(threaded.forwardBackward(holder, bad, undefined, () => {}), /input_ids\[0\]\[3\] = 999 is outside the vocabulary/);
    assert.deepEqual(holder.array, copy);
    await assert.rejects(
      threaded.forwardBackward(holder, paddedBatch(), undefined, () => {
        throw new Error('the ring is gone');
      }),
      /the ring is gone/,
    );
    assert.deepEqual(holder.array, copy);
  } finally {
    await threaded.release();
  }
});

test('engine thread at ZeRO stage 3: units fetched position by position give the same bits; a failed fetch fails the call and the thread goes on', async () => {
  const local = await BlockEngine.create(new T5Family(config), options);
  const threaded = await ThreadedBlockEngine.create(t5Spec(config), options);
  try {
    const params = randomParams(new Float32Array(local.paramCount), 5);
    const want = new Float32Array(local.paramCount);
    const wantLoss = await local.forwardBackward(params, paddedBatch(), undefined, (lo, _hi, g) => want.set(g, lo));
    // A fetcher handing out each unit at its first use in the pass and dropping it after its last:
    // copies of the unit's slice of the flat buffer (what the gatherer would have all-gathered).
    const fetcher = (trace: readonly (readonly number[])[], failAt = -1) => ({
      async fetch(position: number) {
        if (position === failAt) throw new Error('peer lost during the gather');
        const first = (u: number) => trace.findIndex((t) => t.includes(u)) === position;
        const last = (u: number) => trace.findLastIndex((t) => t.includes(u)) === position;
        const units = new Map(trace[position]!.filter(first).map((u) => [u, params.slice(threaded.units[u]!.lo, threaded.units[u]!.hi)] as const));
        return { units, freeAfter: trace[position]!.filter(last) };
      },
    });
    const got = new Float32Array(local.paramCount);
    const loss = await threaded.forwardBackward(fetcher(threaded.traces.train), paddedBatch(), undefined, (lo, _hi, g) => got.set(g, lo));
    assert.equal(loss.lossSum, wantLoss.lossSum);
    assert.deepEqual(got, want);
    assert.equal((await threaded.forwardLoss(fetcher(threaded.traces.eval), paddedBatch())).lossSum, (await local.forwardLoss(params, paddedBatch())).lossSum);
    await assert.rejects(threaded.forwardBackward(fetcher(threaded.traces.train, 3), paddedBatch(), undefined, () => {}), /peer lost during the gather/);
    // The thread takes the next call.
    assert.equal((await threaded.forwardBackward(fetcher(threaded.traces.train), paddedBatch(), undefined, () => {})).lossSum, wantLoss.lossSum);
  } finally {
    await local.release();
    await threaded.release();
  }
});
