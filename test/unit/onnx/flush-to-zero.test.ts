import test from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { Graph } from '../../../shared/onnx/graph.js';
import { matmul, mul } from '../../../shared/onnx/ops.js';
import { serializeGraph } from '../../../shared/onnx/serialize.js';
import { EngineOptionsSchema, sessionOptions } from '../../../shared/onnx/session-options.js';

// Every kp-coord session flushes float32 subnormals to zero (see [Note: flush-to-zero] in
// session-options.ts): results below 2^-126 come out as 0 (FTZ) and subnormal inputs read as 0
// (DAZ), on the calling thread and on the pool's threads; normal values are untouched.
// Subnormals are written and read through Uint32Array views: once a session exists, this (the
// calling) thread flushes too, so a Float32Array store or load would hide what ORT did.

const bits = (f: Float32Array) => new Uint32Array(f.buffer, f.byteOffset, f.length);
const F32_2_POW_MINUS_70 = 0x1c800000; // 2^-70: exponent 127 - 70 = 57
const SUBNORMAL = 0x00300000; // 1.5 * 2^-130

test('sessions flush subnormal results and inputs to zero, on one thread and on two', async () => {
  for (const threads of [1, 2]) {
    const n = 256; // large enough for ORT to split the Mul and the MatMul across its threads
    const g = new Graph();
    const a = g.input('a', 'float32', [n, n]);
    const b = g.input('b', 'float32', [n, n]);
    g.output('product', mul(a, b));
    g.output('matmul', matmul(a, b));
    const session = await ort.InferenceSession.create(serializeGraph(g), sessionOptions(EngineOptionsSchema.parse({ intraOpThreads: threads })));
    try {
      // a = 2^-70 everywhere, b = 2^-70 (product 2^-140: subnormal) except the first row of b = 1.
      const aData = new Float32Array(n * n);
      bits(aData).fill(F32_2_POW_MINUS_70);
      const bData = new Float32Array(n * n);
      bits(bData).fill(F32_2_POW_MINUS_70);
      bits(bData).fill(0x3f800000, 0, n); // 1.0
      const out = await session.run({ a: new ort.Tensor('float32', aData, [n, n]), b: new ort.Tensor('float32', bData, [n, n]) });
      const product = bits(out.product!.data as Float32Array);
      assert.equal(product[0], F32_2_POW_MINUS_70, 'a normal product is exact');
      assert.ok(product.subarray(n).every((x) => x === 0), `threads ${threads}: subnormal products flushed to 0`);
      // matmul[i][j] = 2^-70 * b[0][j] + sum_{k>0} 2^-70 * 2^-70: only the first term is normal.
      assert.ok(bits(out.matmul!.data as Float32Array).every((x) => x === F32_2_POW_MINUS_70), `threads ${threads}: matmul sums only the normal term`);
      // A subnormal input reads as 0 (denormals-are-zero): 1.5 * 2^-130 * 1 = 0.
      const sub = new Float32Array(n * n);
      bits(sub).fill(SUBNORMAL);
      const ones = new Float32Array(n * n).fill(1);
      const out2 = await session.run({ a: new ort.Tensor('float32', sub, [n, n]), b: new ort.Tensor('float32', ones, [n, n]) });
      assert.ok(bits(out2.product!.data as Float32Array).every((x) => x === 0), `threads ${threads}: subnormal inputs read as 0`);
    } finally {
      await session.release();
    }
  }
  // ORT set FTZ/DAZ on this (the calling) thread with the first session: JS float32 stores flush too.
  const js = new Float32Array(1);
  js[0] = 1.5 * 2 ** -130;
  assert.equal(bits(js)[0], 0, 'the process main thread flushes as well (see the note in session-options.ts)');
});
