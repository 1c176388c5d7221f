import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputFileError } from '../errors.js';
import type { LoraSettings } from './lora.js';
import { BART_PRESETS, parseBartConfig } from './bart-config.js';
import { BartFamily } from './bart-family.js';
import type { ModelFamily } from './model-family.js';
import { NEOX_PRESETS, parseNeoXConfig } from './neox-config.js';
import { NeoXFamily } from './neox-family.js';
import { T5_PRESETS } from './presets.js';
import { parseT5Config, type T5Config } from './t5-config.js';
import { T5Family } from './t5-family.js';

// A model as data (what crosses to an engine thread and what a plan names): the HF `model_type`,
// its config.json object and the run's LoRA settings. `modelFamily` turns it into the family the
// engine runs; `resolveModelSpec` reads one from `preset:<name>` or an HF model folder.

export type ModelType = 't5' | 'gpt_neox' | 'bart';

const MODEL_TYPE_NAMES: readonly ModelType[] = ['t5', 'gpt_neox', 'bart'];

export interface ModelSpec {
  readonly modelType: ModelType;
  /** The config.json object (validated again by the family's parser). */
  readonly configRaw: Readonly<Record<string, unknown>>;
  /** LoRA ([Note: LoRA]): only adapters train; null or absent: full fine-tuning. */
  readonly lora?: LoraSettings | null;
}

/** Every built-in model shape (`--model preset:<name>`), with its family. */
export const MODEL_PRESETS: Readonly<Record<string, { readonly modelType: ModelType; readonly config: Readonly<Record<string, unknown>> }>> = Object.freeze({
  ...Object.fromEntries(Object.entries(T5_PRESETS).map(([name, config]) => [name, { modelType: 't5' as const, config: { ...config, model_type: 't5' } }])),
  ...Object.fromEntries(Object.entries(NEOX_PRESETS).map(([name, config]) => [name, { modelType: 'gpt_neox' as const, config: { ...config, model_type: 'gpt_neox' } }])),
  ...Object.fromEntries(Object.entries(BART_PRESETS).map(([name, config]) => [name, { modelType: 'bart' as const, config: { ...config, model_type: 'bart' } }])),
});

export const PRESET_PREFIX = 'preset:';

export function modelFamily(spec: ModelSpec): ModelFamily {
  switch (spec.modelType) {
    case 't5':
      return new T5Family(parseT5Config(spec.configRaw), spec.lora ?? null);
    case 'gpt_neox':
      return NeoXFamily.withLora(parseNeoXConfig(spec.configRaw), spec.lora ?? null);
    case 'bart':
      return new BartFamily(parseBartConfig(spec.configRaw), spec.lora ?? null);
  }
}

export function t5Spec(config: T5Config): ModelSpec {
  return { modelType: 't5', configRaw: config.raw };
}

/** `preset:<name>`, an HF model folder (its config.json) or a config.json file; the family from `model_type`. */
export function resolveModelSpec(spec: string): ModelSpec {
  if (spec.startsWith(PRESET_PREFIX)) {
    const name = spec.slice(PRESET_PREFIX.length);
    const preset = Object.hasOwn(MODEL_PRESETS, name) ? MODEL_PRESETS[name]! : undefined;
    if (!preset) throw new InputFileError(spec, '', `unknown preset '${name}' (known: ${Object.keys(MODEL_PRESETS).join(', ')})`);
    return { modelType: preset.modelType, configRaw: preset.config };
  }
  let file = spec;
  try {
    if (statSync(spec).isDirectory()) file = join(spec, 'config.json');
  } catch (cause) {
    throw new InputFileError(spec, '', 'no such model directory or config file (or use preset:<name>)', { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (cause) {
    throw new InputFileError(file, '', `not readable JSON: ${(cause as Error).message}`, { cause });
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new InputFileError(file, '', 'expected a JSON object');
  const type = (json as { model_type?: unknown }).model_type ?? 't5';
  if (!(MODEL_TYPE_NAMES as readonly unknown[]).includes(type)) throw new InputFileError(file, '', `field model_type: ${JSON.stringify(type)} is not a family kp-coord trains (${MODEL_TYPE_NAMES.join(', ')})`);
  const modelType = type as ModelType;
  // Parse once here so a bad config fails where it is named, not in a worker.
  if (modelType === 't5') parseT5Config(json, file);
  else if (modelType === 'gpt_neox') parseNeoXConfig(json, file);
  else parseBartConfig(json, file);
  return { modelType, configRaw: json as Record<string, unknown> };
}

/**
 * The model as trained with its embeddings resized to `resizeTo` (HF
 * `resize_token_embeddings(len(tokenizer))` after adding tokens; null: no resize): GPT-NeoX's
 * embedding tables grow or shrink to it (polyglot-ko's 30080 rows become 30008 with the two prefix
 * tokens, as in the team's runs); T5 takes no added tokens (the causal layout only).
 */
export function resizedForData(spec: ModelSpec, resizeTo: number | null): { readonly spec: ModelSpec; readonly resizedFrom: number | null } {
  const vocab = Number(spec.configRaw.vocab_size);
  if (spec.modelType !== 'gpt_neox' || resizeTo === null || resizeTo === vocab) return { spec, resizedFrom: null };
  return { spec: { ...spec, configRaw: { ...spec.configRaw, vocab_size: resizeTo } }, resizedFrom: vocab };
}
