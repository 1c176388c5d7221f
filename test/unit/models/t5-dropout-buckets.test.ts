import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { positionBucketTable, relativePositionBucket, shiftRight } from '../../../shared/models/t5-position-buckets.js';
import { fillDropoutMask } from '../../../worker/engine/dropout-masks.js';
import { T5Engine } from '../../../worker/engine/t5-engine.js';
import { paddedBatch, randomParams, rowAlone, tinyConfig } from './t5-helpers.js';

test('relative position buckets equal HF _relative_position_bucket (32 buckets, max distance 128)', () => {
  // Encoder (bidirectional): 16 buckets per direction, 8 exact, log-spaced up to 128.
  const enc: [number, number][] = [[0, 0], [-1, 1], [-7, 7], [-8, 8], [-11, 8], [-12, 9], [-16, 10], [-32, 12], [-64, 14], [-127, 15], [-128, 15], [-1000, 15], [1, 17], [16, 26], [500, 31]];
  for (const [rp, want] of enc) assert.equal(relativePositionBucket(rp, true, 32, 128), want, `bidirectional ${rp}`);
  // Decoder (causal): only the past, 16 exact buckets; the future maps to bucket 0.
  const dec: [number, number][] = [[3, 0], [0, 0], [-1, 1], [-15, 15], [-16, 16], [-31, 21], [-29, 20], [-32, 21], [-64, 26], [-128, 31], [-4096, 31]];
  for (const [rp, want] of dec) assert.equal(relativePositionBucket(rp, false, 32, 128), want, `causal ${rp}`);
  const table = positionBucketTable(3, 3, true, 32, 128);
  assert.deepEqual([...table], [0, 17, 18, 1, 0, 17, 2, 1, 0]);
});

test('decoder inputs are labels shifted right with the start token, -100 as pad', () => {
  const out = shiftRight(Int32Array.from([11, 12, 1, 14, 1, -100]), 2, 3, 0, 0);
  assert.deepEqual([...out], [0, 11, 12, 0, 14, 1]);
});

test('dropout masks: drop share matches the rate; same key same mask; other step other mask', () => {
  const shape = [2, 4, 64, 64];
  const key = { seed: 7, step: 3, sampleIndices: [10, 11] };
  const a = new Uint8Array(2 * 4 * 64 * 64);
  const b = new Uint8Array(a.length);
  fillDropoutMask(a, shape, 0.1, 5, key);
  fillDropoutMask(b, shape, 0.1, 5, key);
  assert.deepEqual(a, b);
  const dropped = a.length - a.reduce((s, x) => s + x, 0);
  // Binomial(n = 32768, p = 0.1): sd = sqrt(n p (1-p)) ~ 54; allow 5 sd.
  assert.ok(Math.abs(dropped - 0.1 * a.length) < 5 * Math.sqrt(a.length * 0.09), `dropped ${dropped}`);
  fillDropoutMask(b, shape, 0.1, 5, { ...key, step: 4 });
  assert.notDeepEqual(a, b);
  // A sample's mask does not depend on its neighbours or on padding: row 1 alone, padded less.
  const alone = new Uint8Array(4 * 32 * 32);
  fillDropoutMask(alone, [1, 4, 32, 32], 0.1, 5, { ...key, sampleIndices: [11] });
  for (let h = 0; h < 4; h++) {
    for (let q = 0; q < 32; q++) {
      for (let k = 0; k < 32; k++) {
        assert.equal(alone[(h * 32 + q) * 32 + k], a[((1 * 4 + h) * 64 + q) * 64 + k], `h${h} q${q} k${k}`);
      }
    }
  }
});

test('with dropout on, a batch gives the sum of its rows run alone (masks follow the sample, not the batch)', async () => {
  const config = tinyConfig({ dropout_rate: 0.3 });
  const engine = await T5Engine.create(config, { dtype: 'float64', intraOpThreads: 1, dropout: true });
  try {
    const params = randomParams(new Float64Array(engine.paramCount), 8);
    const batch = paddedBatch();
    const g = new Float64Array(engine.paramCount);
    const key = { seed: 1, step: 5, sampleIndices: [40, 41] };
    const whole = await engine.forwardBackward(params, g, batch, key);
    const again = await engine.forwardBackward(params, g, batch, key);
    assert.equal(whole.lossSum, again.lossSum, 'same key, same loss');
    const r0 = await engine.forwardBackward(params, g, rowAlone(batch, 0), { ...key, sampleIndices: [40] });
    const r1 = await engine.forwardBackward(params, g, rowAlone(batch, 1), { ...key, sampleIndices: [41] });
    assert.ok(Math.abs(whole.lossSum - (r0.lossSum + r1.lossSum)) < 1e-10 * whole.lossSum);
    const other = await engine.forwardBackward(params, g, batch, { ...key, step: 6 });
    assert.notEqual(other.lossSum, whole.lossSum, 'another step draws other masks');
    const evalLoss = await engine.forwardLoss(params, batch);
    assert.notEqual(evalLoss.lossSum, whole.lossSum, 'evaluation runs without dropout');
    await assert.rejects(engine.forwardBackward(params, g, batch), /dropout key/);
  } finally {
    await engine.release();
  }
});

test('bad batches are refused with the position of the bad id', async () => {
  const engine = await T5Engine.create(tinyConfig(), { dtype: 'float32', intraOpThreads: 1 });
  try {
    const params = new Float32Array(engine.paramCount);
    const batch = { ...paddedBatch(), inputIds: Int32Array.from([5, 6, 7, 99, 1, 9, 10, 1, 0, 0]) };
    await assert.rejects(engine.forwardLoss(params, batch), /input_ids\[0\]\[3\] = 99 is outside the vocabulary/);
    await assert.rejects(engine.forwardLoss(new Float32Array(3), paddedBatch()), /params: expected a Float32Array of at least/);
  } finally {
    await engine.release();
  }
});

// Masks decide which weights a run reaches, so their bits are part of the product: a checkpoint
// resumed by a newer kp-coord must see the masks the older one drew. These digests were taken from
// the first release's fillDropoutMask (before its inner loop was rewritten for speed).
test('dropout masks are bit-identical to the first release (sha256 of three masks)', () => {
  const cases: [number[], number, number, string][] = [
    [[4, 4, 835, 835], 0.1, 0, '93a7a495ec19620b6024e6f2c9a317f45cc0469581e0e5aa2a04cb8aaf7ad1e5'],
    [[3, 2, 9, 7], 0.5, 7, 'dba28d34f6cf1ef632ef331f79220d56bf4fd82aa57ae0c7429520c375ae7517'],
    [[2, 5], 0.1, 3, '97e8e42378dac2c0d0baaa7571deec1359d328f8ef0103e5fb7eaf261b0c15f4'],
  ];
  for (const [shape, rate, site, digest] of cases) {
    const mask = new Uint8Array(shape.reduce((a, b) => a * b, 1));
    fillDropoutMask(mask, shape, rate, site, { seed: 20261206, step: 5, sampleIndices: Array.from({ length: shape[0]! }, (_, i) => 31 * i + 2) });
    assert.equal(createHash('sha256').update(mask).digest('hex'), digest, `mask ${JSON.stringify(shape)} rate ${rate} site ${site}`);
  }
});
