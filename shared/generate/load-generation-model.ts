import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MANIFEST, readVerifiedManifest } from '../checkpoint/checkpoint-manifest.js';
import { readRange } from '../checkpoint/range-shard.js';
import { InputFileError, WeightsMismatchError } from '../errors.js';
import type { T5Config } from '../models/t5-config.js';
import { t5ParamSpecs } from '../models/t5-params.js';
import { FlatLayout } from '../weights/flat-layout.js';
import { loadHfModel, resolveModelConfig } from '../weights/hf-checkpoint.js';
import { initT5Flat } from '../weights/init.js';

// The weights `kp-coord generate --model` names: a Hugging Face model directory, a kp-coord
// checkpoint directory (manifest.json + rank shards, any world size), or `preset:<name>` with fresh
// random weights (tests, benchmarks).

export interface GenerationModel {
  readonly kind: 'hf' | 'checkpoint' | 'preset';
  readonly config: T5Config;
  readonly flat: Float32Array;
  /** A folder that may hold the model's tokenizer.json (HF directories), else null. */
  readonly tokenizerDir: string | null;
}

export async function loadGenerationModel(spec: string, initSeed = 0): Promise<GenerationModel> {
  if (spec.startsWith('preset:')) {
    const config = resolveModelConfig(spec);
    return { kind: 'preset', config, flat: initT5Flat(config, FlatLayout.fromSpecs(t5ParamSpecs(config)), initSeed), tokenizerDir: null };
  }
  let isDir = false;
  try {
    isDir = statSync(spec).isDirectory();
  } catch (cause) {
    throw new InputFileError(spec, '', 'no such model directory (give an HF model directory, a checkpoint directory or preset:<name>)', { cause });
  }
  if (!isDir) throw new InputFileError(spec, '', 'not a directory (give an HF model directory, a checkpoint directory or preset:<name>)');
  if (existsSync(join(spec, MANIFEST))) {
    const manifest = await readVerifiedManifest(spec);
    const config = resolveModelConfig(manifest.model);
    const layout = FlatLayout.fromSpecs(t5ParamSpecs(config));
    if (layout.totalSize !== manifest.param_count) {
      throw new WeightsMismatchError(`${spec}: ${manifest.param_count} parameters, but ${manifest.model} has ${layout.totalSize}`);
    }
    const flat = new Float32Array(layout.totalSize);
    await readRange(spec, manifest.files, 'params', 0, flat);
    // A run trained from an HF directory names it as its model; its tokenizer is the one to use.
    const fromDir = !manifest.model.startsWith('preset:') && existsSync(join(manifest.model, 'tokenizer.json'));
    return { kind: 'checkpoint', config, flat, tokenizerDir: fromDir ? manifest.model : null };
  }
  const loaded = await loadHfModel(spec);
  return { kind: 'hf', config: loaded.config, flat: loaded.flat, tokenizerDir: existsSync(join(spec, 'tokenizer.json')) ? spec : null };
}
