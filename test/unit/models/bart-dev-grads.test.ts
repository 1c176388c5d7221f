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
import { BART_LOGITS_BIAS } from '../../../shared/models/bart-params.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { loadHfWeights, saveBartModel } from '../../../shared/weights/hf-checkpoint.js';
import { SafetensorsFile } from '../../../shared/weights/safetensors.js';
import { WholeBart } from './bart-helpers.js';

// `kp-coord dev init-model --preset bart-tiny` and `kp-coord dev grads` on BART, against the
// whole-model graph in float64: the file holds float32 values of float64 computations, so they
// equal the oracle's gradients to float32 rounding (2^-24 relative; 1e-6 of each tensor's largest
// entry is ~17 ulps of headroom, plus 1e-13 of the model's largest entry for k_proj biases, whose
// gradient is zero in exact arithmetic: softmax cancels them), and the loss sum is the oracle's
// rounded to float32 exactly.

const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'coordinator', 'cli', 'main.js');

test('kp-coord dev grads on BART: loss sum, token count, the tied embedding once under model.shared.weight, no final_logits_bias', async () => {
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
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
