import type { ModelFamily } from './model-family.js';
import { T5Family } from './t5-family.js';
import { parseT5Config, type T5Config } from './t5-config.js';

// A model as data (what crosses to an engine thread and what a plan names): the HF `model_type`
// and its parsed config.json object. `modelFamily` turns it into the family the engine runs.

export interface ModelSpec {
  readonly modelType: 't5' | 'gpt_neox';
  /** The config.json object (validated again by the family's parser). */
  readonly configRaw: Readonly<Record<string, unknown>>;
}

export function modelFamily(spec: ModelSpec): ModelFamily {
  switch (spec.modelType) {
    case 't5':
      return new T5Family(parseT5Config(spec.configRaw));
    case 'gpt_neox':
      throw new RangeError('gpt_neox is not wired yet');
  }
}

export function t5Spec(config: T5Config): ModelSpec {
  return { modelType: 't5', configRaw: config.raw };
}
