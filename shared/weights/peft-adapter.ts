import { readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { InputFileError, WeightsMismatchError } from '../errors.js';
import { loraParamCount, PEFT_PREFIX, type LoraModelType, type LoraParamSpec, type LoraSettings } from '../models/lora.js';
import { numel, type ParamSpec } from '../models/t5-params.js';
import { parseInput } from '../zod-issues.js';
import { writeBytesAtomically } from './atomic-file.js';
import { FlatLayout } from './flat-layout.js';
import { SafetensorsFile, writeSafetensors } from './safetensors.js';

// A PEFT adapter directory, as `PeftModel.save_pretrained` writes it and `PeftModel.from_pretrained`
// reads it: adapter_config.json (LoraConfig's fields) and adapter_model.safetensors (float32 here,
// PEFT's saved names `base_model.model.<module>.lora_A.weight` [r, in] / `.lora_B.weight` [out, r]).
// mergeAdapter is `merge_and_unload`: W + scale * B @ A on every adapted Linear.

export const ADAPTER_CONFIG_NAME = 'adapter_config.json';
export const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors';

export type PeftTaskType = 'SEQ_2_SEQ_LM' | 'CAUSAL_LM';

export function peftTaskType(modelType: LoraModelType): PeftTaskType {
  return modelType === 'gpt_neox' ? 'CAUSAL_LM' : 'SEQ_2_SEQ_LM';
}

/**
 * adapter_config.json as PEFT writes it for a plain LoRA (LoraConfig fields present since PEFT 0.10;
 * later versions fill fields absent here with their defaults, earlier ones would refuse unknown ones).
 */
export function peftAdapterConfigJson(settings: LoraSettings, modelType: LoraModelType, baseModelNameOrPath: string): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModelNameOrPath,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: settings.alpha,
    lora_dropout: settings.dropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    r: settings.r,
    rank_pattern: {},
    revision: null,
    target_modules: [...settings.targetModules],
    task_type: peftTaskType(modelType),
    use_dora: false,
    use_rslora: settings.useRslora ?? false,
  };
}

/** The fields we read; others PEFT writes are kept as they are. Features we cannot apply are refused. */
export const PeftAdapterConfigSchema = z.looseObject({
  peft_type: z.literal('LORA'),
  task_type: z.string().nullable().optional(),
  base_model_name_or_path: z.string().nullable().optional(),
  r: z.number().int().positive(),
  lora_alpha: z.number().positive(),
  lora_dropout: z.number().min(0).lt(1).default(0),
  target_modules: z.union([z.array(z.string()), z.string()]).nullable().optional(),
  bias: z.literal('none', { error: "only bias 'none' is supported (trained biases are not in the adapter layout)" }).default('none'),
  fan_in_fan_out: z.literal(false, { error: 'fan_in_fan_out adapters (Conv1D weights) are not supported' }).default(false),
  use_rslora: z.boolean().default(false),
  use_dora: z.literal(false, { error: 'DoRA adapters are not supported' }).default(false),
  rank_pattern: z.record(z.string(), z.unknown()).refine((p) => Object.keys(p).length === 0, 'per-module ranks are not supported').default({}),
  alpha_pattern: z.record(z.string(), z.unknown()).refine((p) => Object.keys(p).length === 0, 'per-module alphas are not supported').default({}),
  modules_to_save: z.array(z.string()).max(0, 'modules_to_save (fully trained modules) are not supported').nullable().default(null),
});

export type PeftAdapterConfig = z.infer<typeof PeftAdapterConfigSchema>;

export interface AdapterTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface PeftAdapter {
  readonly config: PeftAdapterConfig;
  /** PEFT name -> float32 tensor, in file order. */
  readonly tensors: ReadonlyMap<string, AdapterTensor>;
}

/** PEFT's scaling: lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora. */
export function adapterScale(config: Pick<PeftAdapterConfig, 'r' | 'lora_alpha' | 'use_rslora'>): number {
  return config.use_rslora ? config.lora_alpha / Math.sqrt(config.r) : config.lora_alpha / config.r;
}

export interface WritePeftAdapterOptions {
  readonly settings: LoraSettings;
  readonly modelType: LoraModelType;
  /** What the config names as the base (a hub id or the base model directory). */
  readonly baseModelNameOrPath: string;
  /** The adapter layout (loraParamSpecs of the base model). */
  readonly specs: readonly LoraParamSpec[];
  /** The adapter flat buffer in `specs` order (longer is fine: ZeRO padding is not written). */
  readonly flat: Float32Array;
}

/** Write `dir/adapter_model.safetensors` then `dir/adapter_config.json`, each atomically. */
export async function writePeftAdapter(dir: string, o: WritePeftAdapterOptions): Promise<void> {
  const total = loraParamCount(o.specs);
  if (o.flat.length < total) throw new WeightsMismatchError(`adapter buffer has ${o.flat.length} elements, the LoRA layout needs ${total}`);
  await mkdir(dir, { recursive: true });
  let offset = 0;
  const tensors = o.specs.map((s) => {
    const size = numel(s.shape);
    const data = o.flat.subarray(offset, offset + size);
    offset += size;
    return { name: s.name, dtype: 'F32' as const, shape: s.shape, data };
  });
  await writeSafetensors(join(dir, ADAPTER_WEIGHTS_NAME), tensors, { format: 'pt' });
  const config = peftAdapterConfigJson(o.settings, o.modelType, o.baseModelNameOrPath);
  await writeBytesAtomically(join(dir, ADAPTER_CONFIG_NAME), `${JSON.stringify(config, null, 2)}\n`);
}

const ROLE = /^(.+)\.lora_([AB])\.weight$/u;

/** Read and check a PEFT LoRA adapter directory; errors name the file and the field or tensor. */
export async function readPeftAdapter(dir: string): Promise<PeftAdapter> {
  const configPath = join(dir, ADAPTER_CONFIG_NAME);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(configPath, 'utf8'));
  } catch (cause) {
    throw new InputFileError(configPath, '', `unreadable adapter config: ${(cause as Error).message}`, { cause });
  }
  const config = parseInput(PeftAdapterConfigSchema, raw, configPath, 'PEFT LoRA adapter config');

  const weightsPath = join(dir, ADAPTER_WEIGHTS_NAME);
  const file = await SafetensorsFile.open(weightsPath);
  const tensors = new Map<string, AdapterTensor>();
  try {
    for (const info of file.tensors) tensors.set(info.name, { shape: info.shape, data: await file.readFloat32(info.name) });
  } finally {
    await file.close();
  }
  const problems: string[] = [];
  for (const [name, t] of tensors) {
    const m = ROLE.exec(name);
    if (!m || !name.startsWith(PEFT_PREFIX)) {
      problems.push(`'${name}' is not a LoRA weight (${PEFT_PREFIX}<module>.lora_A.weight / .lora_B.weight)`);
      continue;
    }
    const partner = tensors.get(`${m[1]}.lora_${m[2] === 'A' ? 'B' : 'A'}.weight`);
    if (!partner) problems.push(`'${name}' has no lora_${m[2] === 'A' ? 'B' : 'A'} partner`);
    const rank = m[2] === 'A' ? t.shape[0] : t.shape[1];
    if (t.shape.length !== 2 || rank !== config.r) problems.push(`'${name}' has shape [${t.shape.join(', ')}], not rank r = ${config.r}`);
  }
  if (tensors.size === 0) problems.push('no tensors');
  if (problems.length > 0) throw new InputFileError(weightsPath, '', problems.join('; '));
  return { config, tensors };
}

/**
 * merge_and_unload: each adapted base weight W [out, in] (HF name `<module>.weight`) becomes
 * W + scale * B @ A, the product accumulated in float64 and rounded to float32 once. Other tensors
 * are passed through unchanged (same objects). Throws WeightsMismatchError naming a module the base
 * lacks or a shape that does not fit.
 */
export function mergeAdapter(base: ReadonlyMap<string, AdapterTensor>, adapter: PeftAdapter): Map<string, AdapterTensor> {
  const scale = adapterScale(adapter.config);
  const merged = new Map(base);
  const problems: string[] = [];
  for (const [name, a] of adapter.tensors) {
    const m = ROLE.exec(name);
    if (!m || m[2] !== 'A') continue;
    const module = m[1]!.slice(PEFT_PREFIX.length);
    const b = adapter.tensors.get(`${m[1]}.lora_B.weight`)!;
    const w = base.get(`${module}.weight`);
    const [r, n] = a.shape as [number, number];
    const out = b.shape[0]!;
    if (!w) {
      problems.push(`no base weight '${module}.weight'`);
      continue;
    }
    if (w.shape.join() !== `${out},${n}`) {
      problems.push(`'${module}.weight' is [${w.shape.join(', ')}], the adapter needs [${out}, ${n}]`);
      continue;
    }
    const result = new Float32Array(w.data.length);
    const row = new Float64Array(n);
    for (let i = 0; i < out; i++) {
      row.fill(0);
      for (let k = 0; k < r; k++) {
        const bik = b.data[i * r + k]!;
        const ak = k * n;
        for (let j = 0; j < n; j++) row[j]! += bik * a.data[ak + j]!;
      }
      for (let j = 0; j < n; j++) result[i * n + j] = w.data[i * n + j]! + scale * row[j]!;
    }
    merged.set(`${module}.weight`, { shape: w.shape, data: result });
  }
  if (problems.length > 0) throw new WeightsMismatchError(`the adapter does not fit the base model: ${problems.join('; ')}`);
  return merged;
}

/** The base weights `flat` (layout of `specs`) with the adapter merged in (mergeAdapter), as a new flat buffer. */
export function mergedWeights(specs: readonly ParamSpec[], flat: Float32Array, adapter: PeftAdapter): Float32Array {
  const layout = FlatLayout.fromSpecs(specs);
  const base = new Map<string, AdapterTensor>(layout.params.map((p) => [p.name, { shape: p.shape, data: layout.view(flat, p.name) }]));
  const merged = mergeAdapter(base, adapter);
  const out = new Float32Array(layout.totalSize);
  for (const p of layout.params) out.set(merged.get(p.name)!.data, layout.get(p.name).offset);
  return out;
}
