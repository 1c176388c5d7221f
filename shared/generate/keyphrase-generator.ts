import type { EngineOptions } from '../onnx/session-options.js';
import { CausalGenerator } from './causal-generator.js';
import type { GenerateOptionsInput } from './generate-options.js';
import type { GenerationModel } from './load-generation-model.js';
import { T5Generator, type GenerateProgress } from './t5-generator.js';

// The generator of a model, whatever its family: T5 takes encoder inputs (eos last), GPT-NeoX
// prompts (input_prefix + article + target_prefix, no eos); both return the new tokens.

export interface KeyphraseGenerator {
  generate(inputs: readonly ArrayLike<number>[], options?: GenerateOptionsInput, onProgress?: (p: GenerateProgress) => void): Promise<number[][]>;
  release(): Promise<void>;
}

export async function createGenerator(model: GenerationModel, engine: Partial<EngineOptions> = {}): Promise<KeyphraseGenerator> {
  return model.modelType === 't5' ? T5Generator.create(model.config, model.flat, engine) : CausalGenerator.create(model.config, model.flat, engine);
}
