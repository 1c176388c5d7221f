import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readBatchJson } from '../../../shared/models/batch-json.js';
import { BART_PRESETS, parseBartConfig } from '../../../shared/models/bart-config.js';
import { BartFamily } from '../../../shared/models/bart-family.js';
import { bartLoraSpecs } from '../../../shared/models/bart-lora.js';
import { BART_LOGITS_BIAS } from '../../../shared/models/bart-params.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { loadHfWeights, saveBartModel } from '../../../shared/weights/hf-checkpoint.js';
import { writePeftAdapter } from '../../../shared/weights/peft-adapter.js';
import { SafetensorsFile } from '../../../shared/weights/safetensors.js';
import { WholeBart } from './bart-helpers.js';

// `kp-coord dev init-model --preset bart-tiny` and `kp-coord dev grads` on BART, against the
// whole-model graph in float64: the file holds float32 values of float64 computations, so they
// equal the oracle's gradients to float32 rounding (2^-24 relative; 1e-6 of each tensor's largest
// entry is ~17 ulps of headroom, plus 1e-13 of the model's largest entry for k_proj biases, whose
// gradient is zero in exact arithmetic: softmax cancels them), and the loss sum is the oracle's
// rounded to float32 exactly.

const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'coordinator', 'cli', 'main.js');

test('kp-coord dev grads on BART: loss sum, token count, the tied embedding once under model.shared.weight, no final_logits_bias; with --adapter the adapter\'s under PEFT names', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-grads-bart-'));
  try {
    const modelDir = join(dir, 'model');
    execFileSync(process.execPath, [CLI, 'dev', 'init-model', '--preset', 'bart-tiny', '--out', modelDir, '--seed', '3'], { stdio: 'pipe' });
    const config = parseBartConfig(BART_PRESETS['bart-tiny']);
    const family = new BartFamily(config);
    const layout = FlatLayout.fromSpecs(family.paramSpecs());
    const flat = await loadHfWeights(modelDir, 'bart', layout);
    // A non-zero buffer (a trained checkpoint's), so that loading and feeding it is tested too.
    const bias = Float32Array.from({ length: config.vocabSize }, (_, i) => Math.sin(i) * 0.5);
    await saveBartModel(modelDir, config, flat, bias);

    const batchPath = join(dir, 'batch.json');
    writeFileSync(batchPath, JSON.stringify({
      input_ids: [[40, 41, 42, 43, 1], [50, 51, 1, 0, 0]],
      attention_mask: [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]],
      labels: [[60, 61, 62, 1], [70, 1, -100, -100]],
    }));
    const out = join(dir, 'grads.safetensors');
    execFileSync(process.execPath, [CLI, 'dev', 'grads', '--model', modelDir, '--batch', batchPath, '--out', out, '--precision', 'float64', '--threads', '1'], { stdio: 'pipe' });

    const values = new Map(layout.params.map((p) => [p.name, Float64Array.from(layout.view(flat, p.name))]));
    values.set(BART_LOGITS_BIAS, Float64Array.from(bias));
    const whole = await WholeBart.create(config, { gradients: 'dense' });
    const file = await SafetensorsFile.open(out);
    try {
      const want = await whole.run(values, readBatchJson(batchPath, 'bart'));
      assert.deepEqual(file.names().slice().sort(), ['loss_sum', 'token_count', ...layout.params.map((p) => p.name)].sort());
      assert.ok(!file.names().includes(BART_LOGITS_BIAS) && !file.names().some((n) => n.includes('embed_tokens') || n === 'lm_head.weight'));
      const scalar = new Float32Array(1);
      await file.readInto('token_count', scalar);
      assert.equal(scalar[0], 6);
      await file.readInto('loss_sum', scalar);
      assert.equal(scalar[0], Math.fround(Number(want.loss_sum!.data[0])));
      const largest = (a: Float64Array) => a.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      const gmax = Math.max(...layout.params.map((p) => largest(want[`grad.${p.name}`]!.data as Float64Array)));
      for (const p of layout.params) {
        const got = new Float32Array(p.size);
        await file.readInto(p.name, got);
        const expected = want[`grad.${p.name}`]!.data as Float64Array;
        const scale = expected.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
        const worst = got.reduce((m, x, i) => Math.max(m, Math.abs(x - expected[i]!)), 0);
        assert.ok(worst <= 1e-6 * scale + 1e-13 * gmax, `${p.name}: ${worst} of ${scale}`);
      }
    } finally {
      await file.close();
      await whole.release();
    }

    // --adapter: a PEFT adapter (non-zero A and B, as after training) on PEFT's BART targets; the
    // base and the buffer frozen, gradients of the adapter only, under PEFT's names.
    const settings = { r: 2, alpha: 8, dropout: 0.1, targetModules: ['q_proj', 'v_proj'] };
    const lora = new BartFamily(config, settings);
    const adapterLayout = FlatLayout.fromSpecs(lora.paramSpecs());
    const adapterFlat = new Float32Array(adapterLayout.totalSize).map((_, i) => Math.sin(i * 0.7) * 0.2);
    await writePeftAdapter(join(dir, 'adapter'), { settings, modelType: 'bart', baseModelNameOrPath: modelDir, specs: bartLoraSpecs(config, settings), flat: adapterFlat });
    const loraOut = join(dir, 'lora-grads.safetensors');
    execFileSync(process.execPath, [CLI, 'dev', 'grads', '--model', modelDir, '--adapter', join(dir, 'adapter'), '--batch', batchPath, '--out', loraOut, '--precision', 'float64', '--threads', '1'], { stdio: 'pipe' });
    for (const p of adapterLayout.params) values.set(p.name, Float64Array.from(adapterLayout.view(adapterFlat, p.name)));
    const adapted = await WholeBart.create(config, { gradients: 'dense', lora: { ...settings, dropout: 0 } });
    const loraFile = await SafetensorsFile.open(loraOut);
    try {
      const want = await adapted.run(values, readBatchJson(batchPath, 'bart'));
      assert.deepEqual(loraFile.names().slice().sort(), ['loss_sum', 'token_count', ...adapterLayout.params.map((p) => p.name)].sort());
      const scalar = new Float32Array(1);
      await loraFile.readInto('loss_sum', scalar);
      assert.equal(scalar[0], Math.fround(Number(want.loss_sum!.data[0])));
      for (const p of adapterLayout.params) {
        const got = new Float32Array(p.size);
        await loraFile.readInto(p.name, got);
        const expected = want[`grad.${p.name}`]!.data as Float64Array;
        const scale = expected.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
        assert.ok(scale > 0, p.name);
        const worst = got.reduce((m, x, i) => Math.max(m, Math.abs(x - expected[i]!)), 0);
        assert.ok(worst <= 1e-6 * scale, `${p.name}: ${worst} of ${scale}`);
      }
    } finally {
      await loraFile.close();
      await adapted.release();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
