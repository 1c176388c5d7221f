import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readBatchJson } from '../../../shared/models/batch-json.js';
import { loadHfModel } from '../../../shared/weights/hf-checkpoint.js';
import { SafetensorsFile } from '../../../shared/weights/safetensors.js';
import { T5Engine } from '../../../worker/engine/t5-engine.js';

const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'coordinator', 'cli', 'main.js');

test('kp-coord dev grads writes loss, token count and every HF-named gradient, equal to the engine', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-grads-'));
  try {
    execFileSync(process.execPath, [CLI, 'dev', 'init-model', '--preset', 't5-tiny', '--out', join(dir, 'model'), '--seed', '3'], { stdio: 'pipe' });
    const batchPath = join(dir, 'batch.json');
    writeFileSync(batchPath, JSON.stringify({ input_ids: [[40, 41, 42, 1], [50, 1, 0, 0]], attention_mask: [[1, 1, 1, 1], [1, 1, 0, 0]], labels: [[60, 61, 1], [70, 1, -100]] }));
    const out = join(dir, 'grads.safetensors');
    execFileSync(process.execPath, [CLI, 'dev', 'grads', '--model', join(dir, 'model'), '--batch', batchPath, '--out', out, '--threads', '1'], { stdio: 'pipe' });

    const model = await loadHfModel(join(dir, 'model'));
    const engine = await T5Engine.create(model.config, { intraOpThreads: 1 });
    const grad = new Float32Array(engine.paramCount);
    const want = await engine.forwardBackward(model.flat, grad, readBatchJson(batchPath));
    await engine.release();

    const file = await SafetensorsFile.open(out);
    try {
      assert.deepEqual(file.names().slice().sort(), ['loss_sum', 'token_count', ...model.layout.params.map((p) => p.name)].sort());
      const scalar = new Float32Array(1);
      await file.readInto('token_count', scalar);
      assert.equal(scalar[0], 5);
      await file.readInto('loss_sum', scalar);
      assert.equal(scalar[0], Math.fround(want.lossSum));
      for (const p of model.layout.params) {
        const got = new Float32Array(p.size);
        await file.readInto(p.name, got);
        // Same graph, same thread count: the same float32 results bit for bit.
        assert.deepEqual(got, model.layout.view(grad, p.name), p.name);
      }
    } finally {
      await file.close();
    }

    writeFileSync(batchPath, JSON.stringify({ input_ids: [[40, 41], [50]], labels: [[1], [1]] }));
    const bad = spawnSync(process.execPath, [CLI, 'dev', 'grads', '--model', join(dir, 'model'), '--batch', batchPath, '--out', join(dir, 'x.safetensors')], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /batch\.json: input_ids\[1\] has 1 entries; rows must all have 2/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
