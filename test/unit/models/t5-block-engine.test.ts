import { T5Family } from '../../../shared/models/t5-family.js';
import test from 'node:test';
import assert from 'node:assert/strict';
import type { Seq2SeqBatch } from '../../../shared/models/batch.js';
import { parseT5Config, PKO_T5_BASE, type T5Config } from '../../../shared/models/t5-config.js';
import { BlockEngine } from '../../../worker/engine/block-engine.js';
import { T5Engine } from '../../../worker/engine/t5-engine.js';
import { paddedBatch, randomParams, tinyConfig } from './t5-helpers.js';

// The block engine against the whole-model engine (its oracle): same parameters, batch and
// dropout key, so the same function; only the graph is cut differently, sums across blocks (bias
// table, encoder output, shared embedding) are added in another order, and ORT may fuse kernels
// differently. Tolerance per tensor, relative to the tensor's largest gradient entry:
//   float64 1e-10: reordered float64 sums err by ~1e-16 x (number of terms), far below;
//   float32 1e-5:  the same reorderings in float32 (u = 6e-8) over a few hundred terms, plus
//                  kernels that accumulate in another order: observed ~1e-7..1e-6.

type Flat = Float32Array | Float64Array;

/** Gradients the block engine hands out, checked to arrive end to start, each range once. */
async function blockGradients(engine: BlockEngine, params: Flat, batch: Seq2SeqBatch, key?: { seed: number; step: number; sampleIndices: number[] }) {
  const grad = engine.dtype === 'float32' ? new Float32Array(engine.paramCount).fill(Number.NaN) : new Float64Array(engine.paramCount).fill(Number.NaN);
  let expectHi = engine.paramCount;
  const seen: string[] = [];
  const loss = await engine.forwardBackward(params, batch, key, (lo, hi, g) => {
    assert.equal(hi, expectHi, `unit [${lo}, ${hi}) after one ending at ${expectHi}`);
    assert.equal(g.length, hi - lo);
    grad.set(g, lo);
    expectHi = lo;
    seen.push(`${lo}-${hi}`);
  });
  assert.equal(expectHi, 0, 'the units cover the flat buffer');
  assert.deepEqual(seen, engine.units.map((u) => `${u.lo}-${u.hi}`));
  return { loss, grad };
}

async function compare(config: T5Config, dtype: 'float32' | 'float64', options: { checkpointing: boolean; dropout: boolean }, batch: Seq2SeqBatch, std: number) {
  const tol = dtype === 'float64' ? 1e-10 : 1e-5;
  const whole = await T5Engine.create(config, { dtype, dropout: options.dropout, intraOpThreads: 1 });
  const blocks = await BlockEngine.create(new T5Family(config), { dtype, ...options, intraOpThreads: 1 });
  try {
    const params = randomParams(dtype === 'float32' ? new Float32Array(whole.paramCount) : new Float64Array(whole.paramCount), 5, std);
    const key = options.dropout ? { seed: 3, step: 2, sampleIndices: Array.from({ length: batch.batchSize }, (_, i) => 10 + i) } : undefined;
    const want = dtype === 'float32' ? new Float32Array(whole.paramCount) : new Float64Array(whole.paramCount);
    const wantLoss = await whole.forwardBackward(params, want, batch, key);
    const got = await blockGradients(blocks, params, batch, key);
    assert.equal(got.loss.tokenCount, wantLoss.tokenCount);
    assert.ok(Math.abs(got.loss.lossSum - wantLoss.lossSum) <= tol * Math.abs(wantLoss.lossSum), `loss ${got.loss.lossSum} vs ${wantLoss.lossSum}`);
    const layout = (whole as unknown as { layout: { params: { name: string; offset: number; size: number }[] } }).layout;
    let worst = 0;
    for (const p of layout.params) {
      const w = want.subarray(p.offset, p.offset + p.size);
      const g = got.grad.subarray(p.offset, p.offset + p.size);
      let scale = 0;
      for (const x of w) scale = Math.max(scale, Math.abs(x));
      scale ||= 1;
      for (let i = 0; i < w.length; i++) {
        const err = Math.abs(g[i]! - w[i]!) / scale;
        worst = Math.max(worst, err);
        if (!(err <= tol)) assert.fail(`${p.name}[${i}]: block ${g[i]} vs whole ${w[i]} (${err.toExponential(2)} of the tensor's scale > ${tol})`);
      }
    }
    const evalWhole = await whole.forwardLoss(params, batch);
    const evalBlocks = await blocks.forwardLoss(params, batch);
    assert.ok(Math.abs(evalBlocks.lossSum - evalWhole.lossSum) <= tol * Math.abs(evalWhole.lossSum), `eval loss ${evalBlocks.lossSum} vs ${evalWhole.lossSum}`);
    return worst;
  } finally {
    await whole.release();
    await blocks.release();
  }
}

const variants = [
  { name: 'T5 v1.1 (gated-gelu, untied head)', config: () => tinyConfig({ dropout_rate: 0.2 }) },
  { name: 'original T5 (relu, tied embeddings)', config: () => tinyConfig({ feed_forward_proj: 'relu', tie_word_embeddings: true, dropout_rate: 0.2 }) },
];

for (const v of variants) {
  for (const dtype of ['float64', 'float32'] as const) {
    for (const checkpointing of [false, true]) {
      for (const dropout of [false, true]) {
        test(`block engine = whole-model engine, ${dtype}, checkpointing ${checkpointing ? 'on' : 'off'}, dropout ${dropout ? 'on' : 'off'}: ${v.name}`, async () => {
          const worst = await compare(v.config(), dtype, { checkpointing, dropout }, paddedBatch(), 0.3);
          console.log(`worst gradient difference: ${worst.toExponential(2)} of the tensor's scale`);
        });
      }
    }
  }
}

test('block engine = whole-model engine, float32: a pko-t5-base-shaped model with two layers per stack, checkpointing on and off, dropout on', async () => {
  const config = parseT5Config({ ...PKO_T5_BASE, num_layers: 2, num_decoder_layers: 2 });
  const batch: Seq2SeqBatch = {
    batchSize: 2, srcLen: 12, tgtLen: 6,
    inputIds: Int32Array.from({ length: 24 }, (_, i) => (i * 7919) % 50000 + 3),
    attentionMask: Int32Array.from({ length: 24 }, (_, i) => (i < 20 ? 1 : 0)),
    labels: Int32Array.from({ length: 12 }, (_, i) => (i === 11 ? -100 : (i * 104729) % 50000 + 3)),
  };
  for (const checkpointing of [false, true]) {
    const worst = await compare(config, 'float32', { checkpointing, dropout: true }, batch, 0.05);
    console.log(`pko-shaped, checkpointing ${checkpointing}: worst gradient difference ${worst.toExponential(2)} of the tensor's scale`);
  }
});
