import test from 'node:test';
import assert from 'node:assert/strict';
import { T5Engine } from '../../../worker/engine/t5-engine.js';
import { randomParams, tinyConfig } from './t5-helpers.js';

// With several intra-op threads the gradient must still be a pure function of the inputs: the
// embedding and position-bias gradients add many rows into the same table entries (repeated
// tokens, repeated buckets), which must not race or change order between runs.
test('gradients are identical run to run with 2 intra-op threads, and match 1 thread to float32 noise', async () => {
  const config = tinyConfig({ vocab_size: 12 });
  const two = await T5Engine.create(config, { intraOpThreads: 2 });
  const one = await T5Engine.create(config, { intraOpThreads: 1 });
  try {
    const params = randomParams(new Float32Array(two.paramCount), 3);
    // Long rows over a 12-token vocabulary: every token repeats dozens of times.
    // 700^2 position pairs per stack: large enough for ORT to split the scatter across threads.
    const b = 2;
    const s = 700;
    const t = 24;
    const ids = Int32Array.from({ length: b * s }, (_, i) => 2 + ((i * 7) % 10));
    const labels = Int32Array.from({ length: b * t }, (_, i) => 2 + ((i * 5) % 10));
    const batch = { batchSize: b, srcLen: s, tgtLen: t, inputIds: ids, attentionMask: new Int32Array(b * s).fill(1), labels };
    const g1 = new Float32Array(two.paramCount);
    const g2 = new Float32Array(two.paramCount);
    for (let run = 0; run < 5; run++) {
      await two.forwardBackward(params, run === 0 ? g1 : g2, batch);
      if (run > 0) assert.deepEqual(g2, g1, `run ${run} differs from run 0`);
    }
    const gs = new Float32Array(one.paramCount);
    await one.forwardBackward(params, gs, batch);
    const gmax = gs.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    let worst = 0;
    for (let i = 0; i < gs.length; i++) worst = Math.max(worst, Math.abs(gs[i]! - g1[i]!));
    // Thread count changes GEMM blocking (float32 summation order) only: 1e-5 of the largest entry.
    assert.ok(worst <= 1e-5 * gmax, `1 vs 2 threads: ${worst} of ${gmax}`);
  } finally {
    await two.release();
    await one.release();
  }
});

test('gradients bound in place and gradients copied from ORT outputs are the same bits', async () => {
  const config = tinyConfig();
  const bound = await T5Engine.create(config, { intraOpThreads: 1 });
  const copied = await T5Engine.create(config, { intraOpThreads: 1, gradientOutputs: 'copied' });
  try {
    const params = randomParams(new Float32Array(bound.paramCount), 9);
    const batch = { batchSize: 1, srcLen: 6, tgtLen: 3, inputIds: Int32Array.from([5, 6, 7, 8, 9, 1]), attentionMask: new Int32Array(6).fill(1), labels: Int32Array.from([11, 12, 1]) };
    const a = new Float32Array(bound.paramCount);
    const b = new Float32Array(bound.paramCount);
    await bound.forwardBackward(params, a, batch);
    await copied.forwardBackward(params, b, batch);
    assert.deepEqual(b, a);
    assert.ok(a.some((x) => x !== 0));
  } finally {
    await bound.release();
    await copied.release();
  }
});
