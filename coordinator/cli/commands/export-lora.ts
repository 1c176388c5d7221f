import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readVerifiedManifest } from '../../../shared/checkpoint/checkpoint-manifest.js';
import { readRange } from '../../../shared/checkpoint/range-shard.js';
import { InputFileError, KpCoordError, OutputPathError } from '../../../shared/errors.js';
import { loraParamCount, loraParamSpecs, type LoraModelType, type LoraSettings } from '../../../shared/models/lora.js';
import type { ParamSpec } from '../../../shared/models/t5-params.js';
import { checkWritableParent } from '../../../shared/out-dir.js';
import { writeBytesAtomically } from '../../../shared/weights/atomic-file.js';
import { CheckpointTensors } from '../../../shared/weights/checkpoint-tensors.js';
import { CONFIG_NAME } from '../../../shared/weights/hf-checkpoint.js';
import { mergeAdapter, readPeftAdapter, writePeftAdapter, type AdapterTensor } from '../../../shared/weights/peft-adapter.js';
import { writeSafetensors } from '../../../shared/weights/safetensors.js';
import { SAFE_WEIGHTS_NAME } from '../../../shared/weights/sharded-index.js';

// `kp-coord export` for a LoRA run: the checkpoint's flat buffer is the adapter (see [Note: LoRA]),
// written as a PEFT adapter directory; with a merge target, also the base model with the adapter
// merged in (merge_and_unload) as a plain Hugging Face model directory. The checkpoint manifest does
// not record LoRA yet, so the caller passes the run's LoRA settings and the base model.

export interface ExportLoraOptions {
  /** A checkpoint directory of a LoRA run (its `params` are the adapter buffer). */
  readonly checkpoint: string;
  readonly settings: LoraSettings;
  readonly modelType: LoraModelType;
  /** The frozen base model's parameters in named_parameters order (t5ParamSpecs(config), or NeoX's). */
  readonly baseSpecs: readonly Pick<ParamSpec, 'name' | 'shape'>[];
  /** What adapter_config.json names as the base: a hub id or the base model directory. */
  readonly baseModelNameOrPath: string;
  /** The adapter directory to write (must not exist, or be empty). */
  readonly out: string;
  /** Also write the merged model here (must not exist, or be empty); needs `baseModelDir`. */
  readonly mergedOut?: string;
  /** The base model's HF directory (config.json + safetensors), read for the merge. */
  readonly baseModelDir?: string;
}

export interface ExportLoraResult {
  readonly out: string;
  readonly merged: string | null;
  readonly stepsDone: number;
  readonly adapterParameters: number;
}

export async function exportLora(o: ExportLoraOptions): Promise<ExportLoraResult> {
  if (o.mergedOut !== undefined && o.baseModelDir === undefined) throw new KpCoordError('merging a LoRA adapter needs the base model directory');
  for (const dir of [o.out, ...(o.mergedOut === undefined ? [] : [o.mergedOut])]) checkFreshDir(dir);
  const manifest = await readVerifiedManifest(o.checkpoint);
  const specs = loraParamSpecs(o.baseSpecs, o.settings, o.modelType);
  const size = loraParamCount(specs);
  if (size !== manifest.param_count) {
    throw new KpCoordError(`${o.checkpoint}: ${manifest.param_count} parameters, but LoRA r=${o.settings.r} on [${o.settings.targetModules.join(', ')}] of ${manifest.model} has ${size}`);
  }
  const flat = new Float32Array(size);
  await readRange(o.checkpoint, manifest.files, 'params', 0, flat);
  await writePeftAdapter(o.out, { settings: o.settings, modelType: o.modelType, baseModelNameOrPath: o.baseModelNameOrPath, specs, flat });
  if (o.mergedOut !== undefined) await writeMergedModel(o.baseModelDir!, o.out, o.mergedOut);
  return { out: o.out, merged: o.mergedOut ?? null, stepsDone: manifest.steps_done, adapterParameters: size };
}

/**
 * `baseDir` (config.json + model.safetensors or a sharded index) with the PEFT adapter in
 * `adapterDir` merged, written to `outDir` as config.json (torch_dtype float32) + model.safetensors
 * (F32, the base's tensor names and order). Holds every base tensor in memory at once.
 */
export async function writeMergedModel(baseDir: string, adapterDir: string, outDir: string): Promise<void> {
  const adapter = await readPeftAdapter(adapterDir);
  const configPath = join(baseDir, CONFIG_NAME);
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
  } catch (cause) {
    throw new InputFileError(configPath, '', `unreadable model config: ${(cause as Error).message}`, { cause });
  }
  const tensors = await CheckpointTensors.open(baseDir);
  const base = new Map<string, AdapterTensor>();
  try {
    for (const name of tensors.names()) {
      const { info } = tensors.get(name)!;
      const data = new Float32Array(info.numel);
      await tensors.readInto(name, data);
      base.set(name, { shape: info.shape, data });
    }
  } finally {
    await tensors.close();
  }
  const merged = mergeAdapter(base, adapter);
  await mkdir(outDir, { recursive: true });
  await writeSafetensors(join(outDir, SAFE_WEIGHTS_NAME), [...merged].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, data: t.data })), { format: 'pt' });
  await writeBytesAtomically(join(outDir, CONFIG_NAME), `${JSON.stringify({ ...config, torch_dtype: 'float32' }, null, 2)}\n`);
}

function checkFreshDir(dir: string): void {
  if (existsSync(dir) && !(statSync(dir).isDirectory() && readdirSync(dir).length === 0)) throw new OutputPathError(dir, 'already exists and is not empty');
  checkWritableParent(dir);
}
