import type { EngineOptions } from '../onnx/session-options.js';
import { BartGenerator } from './bart-generator.js';
import { CausalGenerator } from './causal-generator.js';
import type { GenerateOptionsInput } from './generate-options.js';
import type { GenerationModel } from './load-generation-model.js';
import type { GenerateProgress } from './seq2seq-generator.js';
import { T5Generator } from './t5-generator.js';

// The generator of a model, whatever its family: T5 and BART take encoder inputs (eos last),
// GPT-NeoX prompts (input_prefix + article + target_prefix, no eos); all return the new tokens.

export interface KeyphraseGenerator {
  generate(inputs: readonly ArrayLike<number>[], options?: GenerateOptionsInput, onProgress?: (p: GenerateProgress) => void): Promise<number[][]>;
  release(): Promise<void>;
}

export async function createGenerator(model: GenerationModel, engine: Partial<EngineOptions> = {}): Promise<KeyphraseGenerator> {
  switch (model.modelType) {
    case 't5':
      return T5Generator.create(model.config, model.flat, engine);
    case 'gpt_neox':
      return CausalGenerator.create(model.config, model.flat, engine);
    case 'bart':
      return BartGenerator.create(model.config, model.flat, engine);
  }
}
