import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WeightsMismatchError } from '../../../shared/errors.js';
import type { LoraSettings } from '../../../shared/models/lora.js';
import { MODEL_PRESETS, resizedForData, resolveModelSpec, type ModelSpec } from '../../../shared/models/model-spec.js';
import { neoxConfigJson, parseNeoXConfig } from '../../../shared/models/neox-config.js';
import { neoxParamSpecs } from '../../../shared/models/neox-params.js';
import { parseT5Config } from '../../../shared/models/t5-config.js';
import { t5ParamSpecs } from '../../../shared/models/t5-params.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { loadHfWeightRanges, saveHfFolder, saveHfModel, type FlatPiece } from '../../../shared/weights/hf-checkpoint.js';
import { initFlatRange } from '../../../shared/weights/init.js';
import { writeSafetensors } from '../../../shared/weights/safetensors.js';
import { WorkerModel } from '../../../worker/worker-model.js';

// ZeRO-3 gives each rank only its chunks of a LoRA run's frozen base (WorkerModel.frozenInto):
// read from the HF folder range by range, or initialised range by range from the seed, or (added
// tokens) cut from the resized base. Each must be exactly the bits of the whole base (`frozen`) at
// those ranges, for pieces that cut parameters anywhere, span several of them, or hold one whole.

const LORA: LoraSettings = { r: 4, alpha: 8, dropout: 0, targetModules: ['query_key_value'] };

/** Pieces over [0, total): cut at fixed fractions (mid-parameter), one spanning many parameters, gaps between. */
function pieces(total: number): FlatPiece[] {
  const cuts = [[0, 0.013], [0.05, 0.4], [0.41, 0.4101], [0.6, 0.97], [0.99, 1]].map(([a, b]) => [Math.floor(a! * total), Math.floor(b! * total)] as const);
  return cuts.map(([lo, hi]) => ({ lo, hi, dest: new Float32Array(hi - lo) }));
}

async function assertRangesMatch(model: WorkerModel, what: string): Promise<void> {
  const whole = (await model.frozen(5))!;
  const ps = pieces(whole.length);
  await model.frozenInto(5, ps);
  for (const p of ps) assert.deepEqual(p.dest, whole.subarray(p.lo, p.hi), `${what}: [${p.lo}, ${p.hi})`);
}

test('frozenInto: a GPT-NeoX base from the seed, from an HF folder, and resized for added tokens gives the whole base at each range', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-frozen-'));
  try {
    const preset = resolveModelSpec('preset:neox-tiny');
    const spec: ModelSpec = { ...preset, lora: LORA };
    await assertRangesMatch(WorkerModel.fromData({ source: 'preset:neox-tiny', spec, weightsDir: null, resizedFrom: null }), 'seed');

    const config = parseNeoXConfig(preset.configRaw);
    const layout = FlatLayout.fromSpecs(neoxParamSpecs(config));
    const values = initFlatRange(neoxParamSpecs(config), layout, 77, 0, layout.totalSize);
    await saveHfFolder(dir, neoxConfigJson(config), layout, values);
    const fromFolder = WorkerModel.fromData({ source: dir, spec, weightsDir: dir, resizedFrom: null });
    await assertRangesMatch(fromFolder, 'HF folder');
    // ... and those bits are the folder's.
    const ps = pieces(layout.totalSize);
    await fromFolder.frozenInto(0, ps);
    for (const p of ps) assert.deepEqual(p.dest, values.subarray(p.lo, p.hi));

    const grown = resizedForData(spec, config.vocabSize + 3);
    await assertRangesMatch(WorkerModel.fromData({ source: dir, spec: { ...grown.spec, lora: LORA }, weightsDir: dir, resizedFrom: grown.resizedFrom }), 'resized');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadHfWeightRanges: a T5 folder loads by ranges, and a tied copy holding other values is refused as by the whole load', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-frozen-t5-'));
  try {
    const config = parseT5Config(MODEL_PRESETS['t5-tiny']!.config);
    const specs = t5ParamSpecs(config);
    const layout = FlatLayout.fromSpecs(specs);
    const values = initFlatRange(specs, layout, 8, 0, layout.totalSize, 1);
    await saveHfModel(dir, config, values);
    const spec: ModelSpec = { modelType: 't5', configRaw: config.raw, lora: { ...LORA, targetModules: ['q', 'v'] } };
    await assertRangesMatch(WorkerModel.fromData({ source: dir, spec, weightsDir: dir, resizedFrom: null }), 'T5 folder');

    // The same folder with encoder.embed_tokens.weight stored beside shared.weight, one bit off.
    const shared = layout.view(values, 'shared.weight');
    const off = Float32Array.from(shared);
    off[3] = off[3]! + 1;
    const tensors = layout.params.map((p) => ({ name: p.name, dtype: 'F32' as const, shape: p.shape, data: layout.view(values, p.name) }));
    await writeSafetensors(join(dir, 'model.safetensors'), [...tensors, { name: 'encoder.embed_tokens.weight', dtype: 'F32', shape: layout.get('shared.weight').shape, data: off }], { format: 'pt' });
    const p = layout.get('shared.weight');
    await assert.rejects(loadHfWeightRanges(dir, 't5', layout, [{ lo: p.offset, hi: p.offset + 10, dest: new Float32Array(10) }]), WeightsMismatchError);
    // Ranges that do not touch the tied parameter do not read its copies.
    const last = layout.params.at(-1)!;
    await loadHfWeightRanges(dir, 't5', layout, [{ lo: last.offset, hi: last.offset + last.size, dest: new Float32Array(last.size) }]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
