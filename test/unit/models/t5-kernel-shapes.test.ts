import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ModelProto } from '../../../proto/gen/onnx/onnx.js';
import { buildT5Graph } from '../../../shared/models/t5-graph.js';
import { serializeGraph } from '../../../shared/onnx/serialize.js';
import { EngineOptionsSchema, sessionOptions } from '../../../shared/onnx/session-options.js';
import { tinyConfig } from './t5-helpers.js';

// The training graph as onnxruntime runs it (its optimised model, written by the session), checked
// for the kernels that made the first release slow (issue 12): a Transpose of a parameter (a
// weight-sized copy per call), and a dense table-sized scatter for a lookup's gradient.

async function optimisedTrainingGraph(overrides: Record<string, unknown>) {
  const config = tinyConfig(overrides);
  const built = buildT5Graph(config, { dtype: 'float32', dropout: true, gradients: 'rows' });
  const dir = mkdtempSync(join(tmpdir(), 'kp-opt-'));
  try {
    const file = join(dir, 'optimised.onnx');
    const session = await ort.InferenceSession.create(serializeGraph(built.graph), { ...sessionOptions(EngineOptionsSchema.parse({ intraOpThreads: 1 })), optimizedModelFilePath: file });
    await session.release();
    return { built, model: ModelProto.decode(readFileSync(file)) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const variant of [
  { name: 'T5 v1.1 (untied head)', overrides: {} },
  { name: 'original T5 (relu, tied embeddings)', overrides: { feed_forward_proj: 'relu', tie_word_embeddings: true } },
]) {
  test(`training graph as ORT optimises it: no Transpose of a parameter, no scatter into a lookup table: ${variant.name}`, async () => {
    const { built, model } = await optimisedTrainingGraph(variant.overrides);
    const params = new Set(built.params.map((p) => p.name));
    const nodes = model.graph!.node;
    // The first release transposed every weight gradient ([in, out] -> [out, in]) into its output.
    const transposed = nodes.filter((n) => n.opType === 'Transpose' && (params.has(n.input[0]!) || n.output.some((o) => o.startsWith('grad.'))));
    assert.deepEqual(transposed.map((n) => `${n.input[0]} -> ${n.output[0]}`), [], 'every W^T folds into its GEMM and every dW is computed in W\'s layout');
    const fused = nodes.filter((n) => n.opType === 'FusedMatMul' || n.opType === 'Gemm');
    assert.ok(fused.length > 0, 'ORT fused the transposes into GEMMs');
    const scatters = nodes.filter((n) => n.opType.startsWith('Scatter')).length;
    assert.equal(scatters, 1, 'one scatter: the cross-entropy gradient into the logits; lookups return rows');
    assert.ok(!nodes.some((n) => n.opType === 'Expand' && n.input.some((i) => /bucket/.test(i))), 'no index expansion of the position buckets');
    // Row gradients, in parameter order: the encoder and decoder lookups of the one shared table, then each stack's bias table.
    const rowOutputs = built.gradientOutputs.flatMap((o, i) => o.rows.map(() => built.params[i]!.name));
    const bias = (stack: string) => `${stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`;
    assert.deepEqual(rowOutputs, ['shared.weight', 'shared.weight', bias('encoder'), bias('decoder')]);
    const sharedOut = built.gradientOutputs[built.params.findIndex((p) => p.name === 'shared.weight')]!;
    assert.equal(sharedOut.dense !== null, Boolean(variant.overrides.tie_word_embeddings), 'a dense shared.weight gradient only where the head uses it as a matrix (tied)');
  });
}
