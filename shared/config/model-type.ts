import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelType } from '../data/data-cache.js';
import { InputFileError } from '../errors.js';
import { readBartConfig } from '../models/bart-config.js';
import { resolveModelConfig } from '../weights/hf-checkpoint.js';

// Which family an HF model folder holds, read from config.json's `model_type` as transformers'
// AutoConfig does, and its hidden size (HF sizes the "auto" ZeRO buckets from it).

export const MODEL_TYPES: readonly ModelType[] = ['t5', 'gpt_neox', 'bart'];

export interface ModelFacts {
  readonly modelType: ModelType;
  /** T5 and BART d_model, GPT-NeoX hidden_size. */
  readonly hiddenSize: number;
}

export function readModelFacts(dir: string): ModelFacts {
  const file = join(dir, 'config.json');
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    // Missing or unreadable: the T5 reader says what is wrong, as before.
    return { modelType: 't5', hiddenSize: resolveModelConfig(dir).dModel };
  }
  const type = (json as { model_type?: unknown }).model_type;
  if (type === 'gpt_neox') {
    const hidden = (json as { hidden_size?: unknown }).hidden_size;
    if (typeof hidden !== 'number' || !Number.isInteger(hidden) || hidden < 1) throw new InputFileError(file, '', `field hidden_size: expected a positive integer (got ${JSON.stringify(hidden)})`);
    return { modelType: 'gpt_neox', hiddenSize: hidden };
  }
  if (type === 'bart') return { modelType: 'bart', hiddenSize: readBartConfig(file).dModel };
  if (type === undefined || type === 't5') return { modelType: 't5', hiddenSize: resolveModelConfig(dir).dModel };
  throw new InputFileError(file, '', `field model_type: ${JSON.stringify(type)} is not a family kp-coord trains (${MODEL_TYPES.join(', ')})`);
}
