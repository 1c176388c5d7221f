import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { MANIFEST, readVerifiedManifest } from '../checkpoint/checkpoint-manifest.js';
import { readRange } from '../checkpoint/range-shard.js';
import { InputFileError, KpCoordError, WeightsMismatchError } from '../errors.js';
import { PRESET_PREFIX, resolveModelSpec, type ModelSpec } from '../models/model-spec.js';
import { parseBartConfig, type BartConfig } from '../models/bart-config.js';
import { bartGenerationSpecs } from '../models/bart-encoder-graph.js';
import { bartBufferSpecs, bartParamSpecs } from '../models/bart-params.js';
import { parseNeoXConfig, type NeoXConfig } from '../models/neox-config.js';
import { neoxParamSpecs } from '../models/neox-params.js';
import { parseT5Config, type T5Config } from '../models/t5-config.js';
import { t5ParamSpecs, type ParamSpec } from '../models/t5-params.js';
import { FlatLayout } from '../weights/flat-layout.js';
import { loadHfWeights } from '../weights/hf-checkpoint.js';
import { initFlatRange } from '../weights/init.js';
import { ADAPTER_CONFIG_NAME, mergedWeights, readPeftAdapter } from '../weights/peft-adapter.js';

// The weights `kp-coord generate --model` names, and predict_with_generate's final model: a Hugging
// Face model directory (T5, GPT-NeoX or BART), a kp-coord checkpoint directory (manifest.json + rank
// shards, any world size, full fine-tuning), a PEFT LoRA adapter directory (a LoRA run's final
// folder: decoded with the adapters merged into the base weights, W + scale B A, once in memory),
// or `preset:<name>` with fresh random weights (tests, benchmarks).
//
// An adapter's base is its adapter_config.json `base_model_name_or_path`: an HF folder, or
// `preset:<name>` for a run that started from a preset's seeded init. Those base weights exist
// nowhere but in the init, so they are rebuilt from the run's seed (as WorkerModel.frozen does):
// the caller's `adapterBaseSeed` (a worker knows its plan's), else the `seed` of the run's
// summary.json beside the folder; with neither the adapter is refused.
//
// BART's flat buffer for generation is its parameters followed by its final_logits_bias buffer
// (bartGenerationSpecs). The buffer is never trained, so a checkpoint (which holds the parameters)
// takes it from the HF folder the run started from, or zeros (HF's init) for a preset.

export type GenerationModel =
  | { readonly modelType: 't5'; readonly kind: GenerationModelKind; readonly config: T5Config; readonly flat: Float32Array; readonly tokenizerDir: string | null }
  | { readonly modelType: 'gpt_neox'; readonly kind: GenerationModelKind; readonly config: NeoXConfig; readonly flat: Float32Array; readonly tokenizerDir: string | null }
  | { readonly modelType: 'bart'; readonly kind: GenerationModelKind; readonly config: BartConfig; readonly flat: Float32Array; readonly tokenizerDir: string | null };

export type GenerationModelKind = 'hf' | 'checkpoint' | 'preset' | 'adapter';

export interface LoadGenerationOptions {
  /** Init seed of `preset:<name>` models (default 0). */
  readonly initSeed?: number;
  /** Init seed of a preset base under a LoRA adapter (the run's `seed`); absent: read from the run's summary.json. */
  readonly adapterBaseSeed?: number;
}

/** The model's trainable parameters, what a full fine-tuning checkpoint holds, in flat order. */
function trainedSpecs(spec: ModelSpec): ParamSpec[] {
  switch (spec.modelType) {
    case 't5':
      return t5ParamSpecs(parseT5Config(spec.configRaw));
    case 'gpt_neox':
      return neoxParamSpecs(parseNeoXConfig(spec.configRaw));
    case 'bart':
      return bartParamSpecs(parseBartConfig(spec.configRaw));
  }
}

/** Everything the generator reads, in its flat order: the trained parameters, then BART's buffer. */
function fullSpecs(spec: ModelSpec): ParamSpec[] {
  return spec.modelType === 'bart' ? bartGenerationSpecs(parseBartConfig(spec.configRaw)) : trainedSpecs(spec);
}

function modelOf(spec: ModelSpec, kind: GenerationModelKind, flat: Float32Array, tokenizerDir: string | null): GenerationModel {
  switch (spec.modelType) {
    case 't5':
      return { modelType: 't5', kind, config: parseT5Config(spec.configRaw), flat, tokenizerDir };
    case 'gpt_neox':
      return { modelType: 'gpt_neox', kind, config: parseNeoXConfig(spec.configRaw), flat, tokenizerDir };
    case 'bart':
      return { modelType: 'bart', kind, config: parseBartConfig(spec.configRaw), flat, tokenizerDir };
  }
}

/** Fresh weights as training initialises them (HF's init; T5 norms at initializer_factor). */
function initialised(spec: ModelSpec, seed: number): Float32Array {
  const specs = fullSpecs(spec);
  const layout = FlatLayout.fromSpecs(specs);
  const ones = spec.modelType === 't5' ? parseT5Config(spec.configRaw).initializerFactor : 1;
  return initFlatRange(specs, layout, seed, 0, layout.totalSize, ones);
}

/** The weights of an HF model folder of either family. */
function hfWeights(dir: string, spec: ModelSpec): Promise<Float32Array> {
  return loadHfWeights(dir, spec.modelType, FlatLayout.fromSpecs(fullSpecs(spec)));
}

function tokenizerDirOf(dir: string): string | null {
  return existsSync(join(dir, 'tokenizer.json')) ? dir : null;
}

export async function loadGenerationModel(spec: string, options: LoadGenerationOptions = {}): Promise<GenerationModel> {
  if (spec.startsWith(PRESET_PREFIX)) {
    const model = resolveModelSpec(spec);
    return modelOf(model, 'preset', initialised(model, options.initSeed ?? 0), null);
  }
  let isDir = false;
  try {
    isDir = statSync(spec).isDirectory();
  } catch (cause) {
    throw new InputFileError(spec, '', 'no such model directory (give an HF model directory, a checkpoint directory, a LoRA adapter directory or preset:<name>)', { cause });
  }
  if (!isDir) throw new InputFileError(spec, '', 'not a directory (give an HF model directory, a checkpoint directory, a LoRA adapter directory or preset:<name>)');
  if (existsSync(join(spec, ADAPTER_CONFIG_NAME))) return loadAdapterModel(spec, options);
  if (existsSync(join(spec, MANIFEST))) {
    const manifest = await readVerifiedManifest(spec);
    const model = resolveModelSpec(manifest.model);
    const trained = FlatLayout.fromSpecs(trainedSpecs(model));
    if (trained.totalSize !== manifest.param_count) {
      throw new WeightsMismatchError(`${spec}: ${manifest.param_count} parameters, but ${manifest.model} has ${trained.totalSize} (a LoRA run's checkpoint holds its adapters only: decode its final folder instead)`);
    }
    const flat = new Float32Array(FlatLayout.fromSpecs(fullSpecs(model)).totalSize);
    await readRange(spec, manifest.files, 'params', 0, flat.subarray(0, trained.totalSize));
    if (model.modelType === 'bart' && !manifest.model.startsWith(PRESET_PREFIX)) {
      // The untrained buffer as the run's HF folder holds it (zeros, as initialised, for a preset).
      flat.set(await loadHfWeights(manifest.model, 'bart', FlatLayout.fromSpecs(bartBufferSpecs(parseBartConfig(model.configRaw)))), trained.totalSize);
    }
    // A run trained from an HF directory names it as its model; its tokenizer is the one to use.
    const fromDir = !manifest.model.startsWith(PRESET_PREFIX) ? tokenizerDirOf(manifest.model) : null;
    return modelOf(model, 'checkpoint', flat, fromDir);
  }
  const model = resolveModelSpec(spec);
  return modelOf(model, 'hf', await hfWeights(spec, model), tokenizerDirOf(spec));
}

async function loadAdapterModel(dir: string, options: LoadGenerationOptions): Promise<GenerationModel> {
  const adapter = await readPeftAdapter(dir);
  const base = adapter.config.base_model_name_or_path;
  if (!base) throw new InputFileError(join(dir, ADAPTER_CONFIG_NAME), 'base_model_name_or_path', 'names no base model to merge the adapter into');
  const model = resolveModelSpec(base);
  let weights: Float32Array;
  let tokenizerDir: string | null = null;
  if (base.startsWith(PRESET_PREFIX)) {
    const seed = options.adapterBaseSeed ?? runSeed(dir);
    if (seed === null) {
      throw new KpCoordError(
        `${dir}: the adapter's base is ${base}, whose weights are the run's seeded init, and the run's seed was not found ` +
          `(no summary.json beside the folder naming it as final_model with a seed): decode it with the run's predict_with_generate, or train from an HF model folder`,
      );
    }
    weights = initialised(model, seed);
  } else {
    weights = await hfWeights(base, model);
    tokenizerDir = tokenizerDirOf(base);
  }
  return modelOf(model, 'adapter', mergedWeights(fullSpecs(model), weights, adapter), tokenizerDir);
}


/**
 * The `seed` of the run whose summary.json (in the folder's parent) names `dir` as its final model
 * (the same path, or the same folder name: a run folder moved as a whole), or null.
 */
function runSeed(dir: string): number | null {
  const path = join(dirname(resolve(dir)), 'summary.json');
  if (!existsSync(path)) return null;
  try {
    const s = JSON.parse(readFileSync(path, 'utf8')) as { final_model?: unknown; seed?: unknown };
    if (typeof s.final_model !== 'string' || (resolve(s.final_model) !== resolve(dir) && basename(s.final_model) !== basename(resolve(dir)))) return null;
    return Number.isSafeInteger(s.seed) && (s.seed as number) >= 0 ? (s.seed as number) : null;
  } catch {
    return null;
  }
}
