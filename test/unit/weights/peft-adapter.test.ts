import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initLoraFlat, loraParamCount, loraParamSpecs, type LoraSettings } from '../../../shared/models/lora.js';
import { numel, t5ParamSpecs } from '../../../shared/models/t5-params.js';
import { rngStream } from '../../../shared/random.js';
import {
  ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, mergeAdapter, readPeftAdapter, writePeftAdapter, type AdapterTensor,
} from '../../../shared/weights/peft-adapter.js';
import { readSafetensors, writeSafetensors } from '../../../shared/weights/safetensors.js';
import { tinyConfig } from '../models/t5-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'kp-peft-'));
after(() => rmSync(root, { recursive: true, force: true }));

const SETTINGS: LoraSettings = { r: 4, alpha: 16, dropout: 0.05, targetModules: ['q', 'v'] };
const config = tinyConfig();
const baseSpecs = t5ParamSpecs(config);
const specs = loraParamSpecs(baseSpecs, SETTINGS, 't5');

function randomFlat(n: number, seed: number): Float32Array {
  const r = rngStream(seed, 5);
  return Float32Array.from({ length: n }, () => r.normal() * 0.2);
}

async function writeAdapter(dir: string, flat = randomFlat(loraParamCount(specs), 1)) {
  await writePeftAdapter(dir, { settings: SETTINGS, modelType: 't5', baseModelNameOrPath: 'google/t5-v1_1-small', specs, flat });
  return flat;
}

test('an adapter written is read back: PEFT config fields, names, shapes and values', async () => {
  const dir = join(root, 'round-trip');
  const flat = await writeAdapter(dir);
  const json = JSON.parse(readFileSync(join(dir, ADAPTER_CONFIG_NAME), 'utf8'));
  assert.equal(json.peft_type, 'LORA');
  assert.equal(json.task_type, 'SEQ_2_SEQ_LM');
  assert.equal(json.r, 4);
  assert.equal(json.lora_alpha, 16);
  assert.equal(json.lora_dropout, 0.05);
  assert.deepEqual(json.target_modules, ['q', 'v']);
  assert.equal(json.bias, 'none');
  assert.equal(json.fan_in_fan_out, false);
  assert.equal(json.inference_mode, true);
  assert.equal(json.init_lora_weights, true);
  assert.equal(json.modules_to_save, null);
  assert.equal(json.base_model_name_or_path, 'google/t5-v1_1-small');

  const file = await readSafetensors(join(dir, ADAPTER_WEIGHTS_NAME));
  assert.equal(file.metadata.format, 'pt');
  assert.deepEqual([...file.tensors.keys()], specs.map((s) => s.name), 'PEFT names in layout order');
  assert.ok([...file.tensors.values()].every((t) => t.info.dtype === 'F32'));

  const adapter = await readPeftAdapter(dir);
  assert.equal(adapter.config.r, 4);
  let o = 0;
  for (const s of specs) {
    const t = adapter.tensors.get(s.name)!;
    assert.deepEqual(t.shape, s.shape);
    assert.deepEqual(t.data, flat.subarray(o, o + numel(s.shape)));
    o += numel(s.shape);
  }
});

test('a bad adapter config or weights file is refused naming the file and the field or tensor', async () => {
  const dir = join(root, 'bad');
  await writeAdapter(dir);
  const configPath = join(dir, ADAPTER_CONFIG_NAME);
  const good = JSON.parse(readFileSync(configPath, 'utf8'));
  const expectConfigError = async (change: Record<string, unknown>, field: RegExp) => {
    writeFileSync(configPath, JSON.stringify({ ...good, ...change }));
    await assert.rejects(readPeftAdapter(dir), (e: Error) => e.message.includes(configPath) && field.test(e.message));
  };
  await expectConfigError({ r: undefined }, /\br: /u);
  await expectConfigError({ peft_type: 'IA3' }, /peft_type: /u);
  await expectConfigError({ use_dora: true }, /use_dora: DoRA/u);
  await expectConfigError({ rank_pattern: { q: 8 } }, /rank_pattern: per-module ranks/u);
  writeFileSync(configPath, '{ not json');
  await assert.rejects(readPeftAdapter(dir), /unreadable adapter config/u);

  writeFileSync(configPath, JSON.stringify(good));
  const weights = join(dir, ADAPTER_WEIGHTS_NAME);
  const one = specs[0]!;
  await writeSafetensors(weights, [{ name: one.name, dtype: 'F32', shape: one.shape, data: new Float32Array(numel(one.shape)) }]);
  await assert.rejects(readPeftAdapter(dir), (e: Error) => e.message.includes(weights) && e.message.includes(`'${one.name}' has no lora_B partner`));
  await writeSafetensors(weights, [{ name: 'encoder.block.0.layer.0.SelfAttention.q.weight', dtype: 'F32', shape: [1], data: new Float32Array(1) }]);
  await assert.rejects(readPeftAdapter(dir), /is not a LoRA weight/u);
});

test('mergeAdapter gives W + scale * B @ A (a direct float64 computation) and leaves other weights alone', async () => {
  const dir = join(root, 'merge');
  const flat = await writeAdapter(dir);
  const adapter = await readPeftAdapter(dir);
  const base = new Map<string, AdapterTensor>(baseSpecs.map((s, i) => [s.name, { shape: s.shape, data: randomFlat(numel(s.shape), 100 + i) }]));
  const merged = mergeAdapter(base, adapter);
  const scale = SETTINGS.alpha / SETTINGS.r;
  let o = 0;
  const adapted = new Set<string>();
  for (let p = 0; p < specs.length; p += 2) {
    const [sa, sb] = [specs[p]!, specs[p + 1]!];
    const A = flat.subarray(o, o + numel(sa.shape));
    const B = flat.subarray(o + numel(sa.shape), o + numel(sa.shape) + numel(sb.shape));
    o += numel(sa.shape) + numel(sb.shape);
    const W = base.get(sa.baseWeight)!.data;
    const got = merged.get(sa.baseWeight)!.data;
    const [r, n] = sa.shape as [number, number];
    adapted.add(sa.baseWeight);
    for (let i = 0; i < W.length / n; i++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let k = 0; k < r; k++) acc += B[i * r + k]! * A[k * n + j]!;
        const want = W[i * n + j]! + scale * acc;
        // One float32 rounding of the float64 result: within half an ulp of float32 (2^-24 relative).
        assert.ok(Math.abs(got[i * n + j]! - want) <= 2 ** -24 * Math.abs(want), `${sa.baseWeight}[${i}, ${j}]: ${got[i * n + j]} vs ${want}`);
      }
    }
    assert.notDeepEqual(got, W, 'the adapter changed the weight');
  }
  for (const [name, t] of base) if (!adapted.has(name)) assert.equal(merged.get(name), t, `${name} passed through`);

  // A fresh (B = 0) adapter merges to the base weights exactly.
  const fresh = join(root, 'fresh');
  await writeAdapter(fresh, initLoraFlat(specs, 3));
  const same = mergeAdapter(base, await readPeftAdapter(fresh));
  for (const [name, t] of base) assert.deepEqual(same.get(name)!.data, t.data, name);

  base.delete(specs[0]!.baseWeight);
  assert.throws(() => mergeAdapter(base, adapter), new RegExp(`no base weight '${specs[0]!.baseWeight.replaceAll('.', '\\.')}'`, 'u'));
});
