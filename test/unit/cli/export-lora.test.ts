import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { runToExit } from '../../helpers/kp-coord-process.js';
import { writeManifest } from '../../../shared/checkpoint/checkpoint-manifest.js';
import { writeRangeShard } from '../../../shared/checkpoint/range-shard.js';
import { loraParamCount, loraParamSpecs, type LoraSettings } from '../../../shared/models/lora.js';
import { buildT5Graph, type T5Graph } from '../../../shared/models/t5-graph.js';
import { numel, t5ParamSpecs } from '../../../shared/models/t5-params.js';
import { serializeGraph } from '../../../shared/onnx/serialize.js';
import { rngStream } from '../../../shared/random.js';
import { loadHfModel, saveHfModel } from '../../../shared/weights/hf-checkpoint.js';
import { readPeftAdapter } from '../../../shared/weights/peft-adapter.js';
import { T5Feeds } from '../../../shared/models/t5-feeds.js';
import { paddedBatch, tinyConfig } from '../models/t5-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'kp-export-lora-'));
after(() => rmSync(root, { recursive: true, force: true }));

const SETTINGS: LoraSettings = { r: 2, alpha: 4, dropout: 0.1, targetModules: ['q', 'v', 'wi_0'] };
/** The checkpoint manifest's record of SETTINGS (the train plan's `lora`). */
const LORA_RECORD = { r: 2, lora_alpha: 4, lora_dropout: 0.1, target_modules: ['q', 'v', 'wi_0'], scaling: 2 };

function randomFlat(n: number, seed: number, std: number): Float32Array {
  const r = rngStream(seed, 11);
  return Float32Array.from({ length: n }, () => r.normal() * std);
}

/** loss_sum of a float64 graph whose inputs are the float32 tensors by name. */
async function loss(built: T5Graph, values: Map<string, Float32Array>): Promise<number> {
  const config = tinyConfig();
  const s = await ort.InferenceSession.create(serializeGraph(built.graph), { intraOpNumThreads: 1 });
  try {
    const feeds: Record<string, ort.Tensor> = new T5Feeds(config, 'float64').feeds(paddedBatch());
    for (const p of [...built.params, ...built.adapters]) feeds[p.name] = new ort.Tensor('float64', Float64Array.from(values.get(p.name)!), [...p.shape]);
    return Number((await s.run(feeds, ['loss_sum'])).loss_sum!.data[0]);
  } finally {
    await s.release();
  }
}

test('kp-coord export: a LoRA checkpoint as a PEFT adapter and, with --merge, as an HF model computing the adapted function', async () => {
  const config = tinyConfig();
  const baseSpecs = t5ParamSpecs(config);
  const baseFlat = randomFlat(baseSpecs.reduce((n, s) => n + numel(s.shape), 0), 1, 0.3);
  const baseDir = join(root, 'base');
  await saveHfModel(baseDir, config, baseFlat);

  const specs = loraParamSpecs(baseSpecs, SETTINGS, 't5');
  const size = loraParamCount(specs);
  const adapterFlat = randomFlat(size, 2, 0.3);
  const ckpt = join(root, 'checkpoint-7');
  mkdirSync(ckpt);
  const shard = await writeRangeShard(ckpt, 0, 1, { start: 0, end: size }, { params: adapterFlat, exp_avg: new Float32Array(size), exp_avg_sq: new Float32Array(size) }, 7);
  await writeManifest(ckpt, {
    version: 1, run_id: 'lora', steps_done: 7, epoch: 0, world: 1, global_batch_size: 1, zero_stage: 0, param_count: size, padded_size: size,
    model: baseDir, lora: LORA_RECORD, seed: 0, data_seed: 0, files: [shard], evals: [], best: null, created: new Date(0).toISOString(),
  });

  const out = join(root, 'adapter');
  const mergedOut = join(root, 'merged');
  const run = await runToExit(['export', '--checkpoint', ckpt, '--out', out, '--merge', mergedOut], { timeoutMs: 60_000 });
  assert.equal(run.code, 0, run.output);
  assert.deepEqual(JSON.parse(run.output.trim().split('\n').at(-1)!), { out, steps_done: 7, parameters: size, adapter: true, merged: mergedOut });

  const adapter = await readPeftAdapter(out);
  assert.equal(adapter.config.task_type, 'SEQ_2_SEQ_LM');
  assert.deepEqual(Float32Array.from([...adapter.tensors.values()].flatMap((t) => [...t.data])), adapterFlat);

  // The merged directory loads with the strict T5 loader, and the base graph on it computes what the
  // LoRA graph computes on base + adapter. Both run in float64; the merged weights were rounded to
  // float32 once (2^-24 relative each), measured to move this loss sum by 4e-9 relative (random
  // 2^-23 perturbations of every weight: 4e-9 too), so 1e-7 leaves 25x margin, while a scale off by
  // 0.1% already moves it by 5e-6 and a wrong order or transpose by ~1e-1.
  const merged = await loadHfModel(mergedOut);
  const byName = (flat: Float32Array) => {
    const m = new Map<string, Float32Array>();
    let o = 0;
    for (const s of baseSpecs) {
      m.set(s.name, flat.subarray(o, o + numel(s.shape)));
      o += numel(s.shape);
    }
    return m;
  };
  const adapted = new Map([...byName(baseFlat), ...[...adapter.tensors].map(([k, t]) => [k, t.data] as const)]);
  const viaAdapter = await loss(buildT5Graph(config, { dtype: 'float64', dropout: false, gradients: false, lora: SETTINGS }), adapted);
  const viaMerged = await loss(buildT5Graph(config, { dtype: 'float64', dropout: false, gradients: false }), byName(merged.flat));
  const viaBase = await loss(buildT5Graph(config, { dtype: 'float64', dropout: false, gradients: false }), byName(baseFlat));
  assert.ok(Math.abs(viaAdapter - viaMerged) <= 1e-7 * Math.abs(viaAdapter), `${viaAdapter} vs ${viaMerged}`);
  assert.ok(Math.abs(viaAdapter - viaBase) > 1e-2, 'the adapter matters');

  // A fresh --merge folder is required; and a manifest whose LoRA record does not fit its files is refused.
  const again = await runToExit(['export', '--checkpoint', ckpt, '--out', join(root, 'other'), '--merge', mergedOut], { timeoutMs: 60_000 });
  assert.equal(again.code, 1);
  assert.match(again.output, /already exists and is not empty/u);
  const wrong = join(root, 'checkpoint-wrong');
  cpSync(ckpt, wrong, { recursive: true });
  await writeManifest(wrong, {
    version: 1, run_id: 'lora', steps_done: 7, epoch: 0, world: 1, global_batch_size: 1, zero_stage: 0, param_count: size, padded_size: size,
    model: baseDir, lora: { ...LORA_RECORD, r: 3, scaling: 4 / 3 }, seed: 0, data_seed: 0, files: [shard], evals: [], best: null, created: new Date(0).toISOString(),
  });
  const mismatch = await runToExit(['export', '--checkpoint', wrong, '--out', join(root, 'other2')], { timeoutMs: 60_000 });
  assert.equal(mismatch.code, 1);
  assert.match(mismatch.output, new RegExp(`${size} parameters, but .* with LoRA r=3`, 'u'));
});
