import test from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { EngineError } from '../../../shared/errors.js';
import { buildT5Graph } from '../../../shared/models/t5-graph.js';
import { serializeGraph } from '../../../shared/onnx/serialize.js';
import { addRows } from '../../../worker/engine/add-rows.js';
import { T5Engine } from '../../../worker/engine/t5-engine.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { paramFeeds } from '../../../shared/onnx/param-feeds.js';
import { T5Feeds } from '../../../shared/models/t5-feeds.js';
import { paddedBatch, randomParams, tinyConfig } from './t5-helpers.js';

// The engine sums lookup gradients (embedding, position bias) as rows in JS; the first release
// scattered them into dense zero tables inside the graph. Both formulations, same float64 inputs:
// the dense graph is an independent check of the row path (and of tied-embedding summation).

for (const variant of [
  { name: 'T5 v1.1 (untied head)', overrides: {} },
  { name: 'original T5 (relu, tied embeddings: dense head gradient plus rows)', overrides: { feed_forward_proj: 'relu', tie_word_embeddings: true } },
]) {
  test(`engine row gradients equal the dense in-graph scatter: ${variant.name}`, async () => {
    const config = tinyConfig(variant.overrides);
    const engine = await T5Engine.create(config, { dtype: 'float64', intraOpThreads: 1 });
    const dense = buildT5Graph(config, { dtype: 'float64', dropout: false, gradients: 'dense' });
    const session = await ort.InferenceSession.create(serializeGraph(dense.graph), { intraOpNumThreads: 1 });
    try {
      const params = randomParams(new Float64Array(engine.paramCount), 7);
      const grad = new Float64Array(engine.paramCount).fill(Number.NaN); // every entry must be written
      const batch = paddedBatch();
      await engine.forwardBackward(params, grad, batch);

      const layout = FlatLayout.fromSpecs(dense.params);
      const out = await session.run({ ...new T5Feeds(config, 'float64').feeds(batch), ...paramFeeds(layout, params, dense.params.map((p) => p.name)) });
      dense.params.forEach((spec, i) => {
        const want = out[dense.gradientOutputs[i]!.dense!]!.data as Float64Array;
        const got = layout.view(grad, spec.name);
        assert.equal(got.length, want.length);
        const scale = want.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
        // Same float64 products; only the order of a few additions may differ: 1e-12 of the tensor's scale.
        for (let k = 0; k < want.length; k++) assert.ok(Math.abs(got[k]! - want[k]!) <= 1e-12 * scale, `${spec.name}[${k}]: rows ${got[k]} vs dense ${want[k]}`);
      });
    } finally {
      await session.release();
      await engine.release();
    }
  });
}

test('addRows adds repeated and negative indices in order and refuses a row outside the table', () => {
  const table = new Float32Array(4 * 2).fill(1);
  addRows(table, 4, 2, Int32Array.from([0, 3, 0, -1]), Float32Array.from([1, 2, 10, 20, 100, 200, 1000, 2000]));
  assert.deepEqual(Array.from(table), [102, 203, 1, 1, 1, 1, 1011, 2021]);
  const t64 = new Float64Array(3);
  addRows(t64, 3, 1, BigInt64Array.from([2n, 2n]), Float64Array.from([0.5, 0.25]));
  assert.deepEqual(Array.from(t64), [0, 0, 0.75]);
  assert.throws(() => addRows(table, 4, 2, Int32Array.from([4]), Float32Array.from([1, 1])), (e: unknown) => e instanceof EngineError && /row index 4 is outside a table of 4 rows/.test(e.message));
  assert.throws(() => addRows(table, 4, 2, Int32Array.from([1]), Float32Array.from([1])), EngineError);
});
