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

test('kp-coord dev grads on GPT-NeoX: every HF-named gradient, and with --adapter the adapter\'s under PEFT names, equal to the whole-model graph', async () => {
  const { parseNeoXConfig, NEOX_PRESETS } = await import('../../../shared/models/neox-config.js');
  const { neoxParamSpecs } = await import('../../../shared/models/neox-params.js');
  const { loraParamSpecs } = await import('../../../shared/models/lora.js');
  const { FlatLayout } = await import('../../../shared/weights/flat-layout.js');
  const { loadHfParams } = await import('../../../shared/weights/hf-checkpoint.js');
  const { writePeftAdapter } = await import('../../../shared/weights/peft-adapter.js');
  const { WholeModel } = await import('../models/neox-helpers.js');
  const dir = mkdtempSync(join(tmpdir(), 'kp-grads-neox-'));
  try {
    execFileSync(process.execPath, [CLI, 'dev', 'init-model', '--preset', 'neox-tiny', '--out', join(dir, 'model'), '--seed', '3'], { stdio: 'pipe' });
    const config = parseNeoXConfig({ ...NEOX_PRESETS['neox-tiny'] });
    const specs = neoxParamSpecs(config);
    const layout = FlatLayout.fromSpecs(specs);
    const flat = await loadHfParams(join(dir, 'model'), layout, { model: 'neox-tiny' });
    const base = new Map(layout.params.map((p) => [p.name, Float64Array.from(layout.view(flat, p.name))]));
    // HF's layout: labels aligned with input_ids (shifted inside), -100 on padding and, in row 0, on a prompt token.
    const batchPath = join(dir, 'batch.json');
    writeFileSync(batchPath, JSON.stringify({
      input_ids: [[40, 41, 42, 43, 1], [50, 51, 1, 0, 0]],
      attention_mask: [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]],
      labels: [[-100, 41, 42, 43, 1], [50, 51, 1, -100, -100]],
    }));
    const batch = readBatchJson(batchPath, 'gpt_neox');

    // The file holds float32 values of float64 computations (--precision float64): equal to the whole
    // graph's float64 gradients to float32 rounding, 1e-6 of the tensor's largest entry.
    const check = async (out: string, want: Record<string, { data: unknown }>, names: readonly { name: string; size: number }[], lossSum: number) => {
      const file = await SafetensorsFile.open(out);
      try {
        assert.deepEqual(file.names().slice().sort(), ['loss_sum', 'token_count', ...names.map((p) => p.name)].sort());
        const scalar = new Float32Array(1);
        await file.readInto('token_count', scalar);
        assert.equal(scalar[0], 6); // row 0 scores labels 1..4, row 1 labels 1..2 (the shift drops position 0's label)
        await file.readInto('loss_sum', scalar);
        assert.equal(scalar[0], Math.fround(lossSum));
        for (const p of names) {
          const got = new Float32Array(p.size);
          await file.readInto(p.name, got);
          const expected = want[`grad.${p.name}`]!.data as Float64Array;
          const scale = expected.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
          const worst = got.reduce((m, x, i) => Math.max(m, Math.abs(x - expected[i]!)), 0);
          assert.ok(worst <= 1e-6 * scale + 1e-30, `${p.name}: ${worst} of ${scale}`);
        }
      } finally {
        await file.close();
      }
    };

    const out = join(dir, 'grads.safetensors');
    execFileSync(process.execPath, [CLI, 'dev', 'grads', '--model', join(dir, 'model'), '--batch', batchPath, '--out', out, '--precision', 'float64', '--threads', '1'], { stdio: 'pipe' });
    const whole = await WholeModel.create(config, { gradients: 'dense' });
    try {
      const want = await whole.run(base, batch);
      await check(out, want, layout.params, Number(want.loss_sum!.data[0]));
    } finally {
      await whole.release();
    }

    // A PEFT adapter with non-zero A and B (as after training) on two target modules.
    const settings = { r: 2, alpha: 8, dropout: 0.1, targetModules: ['query_key_value', 'dense_4h_to_h'] };
    const adapterSpecs = loraParamSpecs(specs, settings, 'gpt_neox');
    const adapterFlat = new Float32Array(adapterSpecs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0)).map((_, i) => Math.sin(i * 0.7) * 0.2);
    await writePeftAdapter(join(dir, 'adapter'), { settings, modelType: 'gpt_neox', baseModelNameOrPath: join(dir, 'model'), specs: adapterSpecs, flat: adapterFlat });
    const adapterLayout = FlatLayout.fromSpecs(adapterSpecs);
    const adapterValues = new Map(adapterLayout.params.map((p) => [p.name, Float64Array.from(adapterLayout.view(adapterFlat, p.name))]));
    const loraOut = join(dir, 'lora-grads.safetensors');
    execFileSync(process.execPath, [CLI, 'dev', 'grads', '--model', join(dir, 'model'), '--adapter', join(dir, 'adapter'), '--batch', batchPath, '--out', loraOut, '--precision', 'float64', '--threads', '1'], { stdio: 'pipe' });
    const adapted = await WholeModel.create(config, { gradients: 'dense', lora: { r: 2, alpha: 8, targets: settings.targetModules } });
    try {
      const want = await adapted.run(new Map([...base, ...adapterValues]), batch);
      await check(loraOut, want, adapterLayout.params, Number(want.loss_sum!.data[0]));
    } finally {
      await adapted.release();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
