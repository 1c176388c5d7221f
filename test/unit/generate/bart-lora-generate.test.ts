import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BartGenerator } from '../../../shared/generate/bart-generator.js';
import { createGenerator } from '../../../shared/generate/keyphrase-generator.js';
import { loadGenerationModel } from '../../../shared/generate/load-generation-model.js';
import { BART_LOGITS_BIAS, bartParamSpecs } from '../../../shared/models/bart-params.js';
import { loraParamSpecs, type LoraSettings } from '../../../shared/models/lora.js';
import { rngStream } from '../../../shared/random.js';
import { saveBartModel } from '../../../shared/weights/hf-checkpoint.js';
import { writePeftAdapter } from '../../../shared/weights/peft-adapter.js';
import { BART_SOURCES, tinyBart } from './bart-helpers.js';

// A LoRA run's final folder (a PEFT adapter over an HF BART folder, PEFT's default BART targets
// q_proj and v_proj) decodes with the adapters merged into the base in memory, W + (alpha / r) B A.
// The merge is checked against one written out here, the decoding against BartGenerator on those
// weights, and the adapter must change the output.

const dir = mkdtempSync(join(tmpdir(), 'kp-bart-lora-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a PEFT adapter folder over an HF BART folder: weights merged as W + scale B A (buffer untouched), decoded as BartGenerator decodes them', async () => {
  const m = tinyBart();
  const bias = m.layout.get(BART_LOGITS_BIAS);
  const hf = join(dir, 'base');
  await saveBartModel(hf, m.config, m.flat.subarray(0, bias.offset), m.layout.view(m.flat, BART_LOGITS_BIAS));

  const settings: LoraSettings = { r: 2, alpha: 8, dropout: 0, targetModules: ['q_proj', 'v_proj'] };
  const specs = loraParamSpecs(bartParamSpecs(m.config), settings, 'bart');
  const sizes = specs.map((s) => s.shape.reduce((a, b) => a * b, 1));
  const adapterFlat = new Float32Array(sizes.reduce((a, b) => a + b, 0));
  rngStream(3, 77).fillNormal(adapterFlat, 0, 0.5); // B nonzero too (a fresh adapter's B is zeros: no change)
  const adapterDir = join(dir, 'final');
  await writePeftAdapter(adapterDir, { settings, modelType: 'bart', baseModelNameOrPath: hf, specs, flat: adapterFlat });

  // The merge written out: for each adapted module, W += (alpha / r) B A.
  const expected = Float32Array.from(m.flat);
  let offset = 0;
  const tensors = new Map<string, Float32Array>();
  specs.forEach((s, i) => {
    tensors.set(s.name, adapterFlat.subarray(offset, offset + sizes[i]!));
    offset += sizes[i]!;
  });
  let adapted = 0;
  for (const [name, a] of tensors) {
    if (!name.endsWith('.lora_A.weight')) continue;
    const module = name.slice('base_model.model.'.length, -'.lora_A.weight'.length);
    const b = tensors.get(name.replace('lora_A', 'lora_B'))!;
    const w = m.layout.view(expected, `${module}.weight`);
    const n = a.length / settings.r;
    const out = b.length / settings.r;
    for (let i = 0; i < out; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < settings.r; k++) s += b[i * settings.r + k]! * a[k * n + j]!;
        w[i * n + j]! += (settings.alpha / settings.r) * s;
      }
    }
    adapted++;
  }
  assert.equal(adapted, 2 * (m.config.encoderLayers + 2 * m.config.decoderLayers), 'q_proj and v_proj of every attention');

  const model = await loadGenerationModel(adapterDir);
  assert.equal(model.modelType, 'bart');
  assert.equal(model.kind, 'adapter');
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(model.flat[i]! - expected[i]!));
  // float64 sums of r = 2 products rounded to float32 both ways: equal to within one rounding of |W| < ~4.
  assert.ok(worst <= 1e-6, `merged weights differ by ${worst}`);
  assert.deepEqual(model.flat.subarray(bias.offset), m.layout.view(m.flat, BART_LOGITS_BIAS), 'final_logits_bias is the base folder\'s');

  const options = { maxNewTokens: 10, numBeams: 2 };
  const viaLoader = await createGenerator(model, { intraOpThreads: 1 });
  const direct = await BartGenerator.create(m.config, expected, { intraOpThreads: 1 });
  const base = await BartGenerator.create(m.config, m.flat, { intraOpThreads: 1 });
  try {
    const merged = await viaLoader.generate(BART_SOURCES, options);
    assert.deepEqual(merged, await direct.generate(BART_SOURCES, options));
    assert.notDeepEqual(merged, await base.generate(BART_SOURCES, options), 'the adapter changes the output');
  } finally {
    await viaLoader.release();
    await direct.release();
    await base.release();
  }
});
