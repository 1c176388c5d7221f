import test from 'node:test';
import assert from 'node:assert/strict';
import { t5ParamSpecs, numel } from '../../../shared/models/t5-params.js';
import { rngStream } from '../../../shared/random.js';
import { T5Engine } from '../../../worker/engine/t5-engine.js';
import { paddedBatch, randomParams, rowAlone, tinyConfig } from './t5-helpers.js';

// Whole-model gradient check in float64: for two random coordinates of every parameter tensor,
// the analytic d(loss_sum)/dp must match the central difference (L(p+h) - L(p-h)) / 2h.
// h = 1e-5: truncation error ~h^2 * |L'''| ~1e-10 and rounding ~eps * |L| / h ~1e-10 for loss
// sums near 20, so 1e-7 of the largest gradient entry leaves three orders of margin while a
// wrong rule (errors of order the gradient itself) fails by far.
const H = 1e-5;
const TOL = 1e-7;

for (const variant of [
  { name: 'T5 v1.1 (gated-gelu, untied head)', overrides: {} },
  { name: 'original T5 (relu, tied embeddings)', overrides: { feed_forward_proj: 'relu', tie_word_embeddings: true } },
]) {
  test(`whole-model gradients match finite differences: ${variant.name}`, async () => {
    const config = tinyConfig(variant.overrides);
    const engine = await T5Engine.create(config, { dtype: 'float64', intraOpThreads: 1 });
    try {
      const params = randomParams(new Float64Array(engine.paramCount), 1);
      const grad = new Float64Array(engine.paramCount);
      const batch = paddedBatch();
      const { tokenCount } = await engine.forwardBackward(params, grad, batch);
      assert.equal(tokenCount, 6, 'labels -100 are not counted');
      const gmax = grad.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      const r = rngStream(2, 3);
      let offset = 0;
      for (const spec of t5ParamSpecs(config)) {
        const size = numel(spec.shape);
        for (let k = 0; k < 2; k++) {
          const i = offset + Math.floor(r.uniform() * size);
          const old = params[i]!;
          params[i] = old + H;
          const up = (await engine.forwardLoss(params, batch)).lossSum;
          params[i] = old - H;
          const down = (await engine.forwardLoss(params, batch)).lossSum;
          params[i] = old;
          const fd = (up - down) / (2 * H);
          assert.ok(Math.abs(fd - grad[i]!) <= TOL * gmax, `${spec.name}[${i - offset}]: analytic ${grad[i]} vs finite difference ${fd}`);
        }
        offset += size;
      }
    } finally {
      await engine.release();
    }
  });
}

test('loss and gradient of a batch are the sums over its rows (padding changes nothing)', async () => {
  const config = tinyConfig();
  const engine = await T5Engine.create(config, { dtype: 'float64', intraOpThreads: 1 });
  try {
    const params = randomParams(new Float64Array(engine.paramCount), 4);
    const batch = paddedBatch();
    const both = new Float64Array(engine.paramCount);
    const whole = await engine.forwardBackward(params, both, batch);
    const sum = new Float64Array(engine.paramCount);
    let loss = 0;
    let tokens = 0;
    for (const r of [0, 1]) {
      const g = new Float64Array(engine.paramCount);
      const res = await engine.forwardBackward(params, g, rowAlone(batch, r));
      loss += res.lossSum;
      tokens += res.tokenCount;
      for (let i = 0; i < g.length; i++) sum[i]! += g[i]!;
    }
    // float64 summation in a different order: agreement to ~1e-12 relative.
    assert.ok(Math.abs(whole.lossSum - loss) < 1e-10 * Math.abs(loss));
    assert.equal(whole.tokenCount, tokens);
    const gmax = sum.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    for (let i = 0; i < sum.length; i++) assert.ok(Math.abs(sum[i]! - both[i]!) <= 1e-10 * gmax, `grad[${i}]`);
  } finally {
    await engine.release();
  }
});

test('float32 and float64 graphs agree to float32 precision', async () => {
  const config = tinyConfig();
  const e64 = await T5Engine.create(config, { dtype: 'float64', intraOpThreads: 1 });
  const e32 = await T5Engine.create(config, { dtype: 'float32', intraOpThreads: 1 });
  try {
    const p64 = randomParams(new Float64Array(e64.paramCount), 5);
    const p32 = Float32Array.from(p64);
    const g64 = new Float64Array(e64.paramCount);
    const g32 = new Float32Array(e32.paramCount);
    const batch = paddedBatch();
    const r64 = await e64.forwardBackward(Float64Array.from(p32), g64, batch);
    const r32 = await e32.forwardBackward(p32, g32, batch);
    // float32 rounding through ~30 ops of depth: 1e-5 relative is ~100 ulps of headroom.
    assert.ok(Math.abs(r64.lossSum - r32.lossSum) < 1e-5 * r64.lossSum);
    const gmax = g64.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    let worst = 0;
    for (let i = 0; i < g64.length; i++) worst = Math.max(worst, Math.abs(g64[i]! - g32[i]!));
    assert.ok(worst < 1e-4 * gmax, `worst float32 gradient error ${worst} of max ${gmax}`);
  } finally {
    await e64.release();
    await e32.release();
  }
});
