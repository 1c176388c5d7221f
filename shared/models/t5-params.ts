import type { T5Config } from './t5-config.js';

// The trainable parameters of T5ForConditionalGeneration, in the order of its `named_parameters()`
// (module registration order; tied duplicates such as `encoder.embed_tokens.weight` appear once,
// as `shared.weight`). This order is the layout of the flat parameter buffer.

export interface ParamSpec {
  readonly name: string;
  /** PyTorch shape: Linear weights are [out_features, in_features]. */
  readonly shape: readonly number[];
  /**
   * HF's `_init_weights`: normal with this std, 'ones' for norm weights, 'zeros' for biases;
   * 'uniform' in [-bound, bound) for LoRA's A (PEFT: kaiming_uniform with a = sqrt 5). A normal
   * embedding with `zeroRow` has that row zeroed after drawing (nn.Embedding's padding_idx, BART).
   */
  readonly init:
    | { readonly kind: 'normal'; readonly std: number; readonly zeroRow?: number }
    | { readonly kind: 'uniform'; readonly bound: number }
    | { readonly kind: 'ones' }
    | { readonly kind: 'zeros' };
}

/** Names HF may store that alias `shared.weight` (tied embeddings). */
export function tiedAliases(config: T5Config): string[] {
  const aliases = ['encoder.embed_tokens.weight', 'decoder.embed_tokens.weight'];
  if (config.tieWordEmbeddings) aliases.push('lm_head.weight');
  return aliases;
}

export function t5ParamSpecs(config: T5Config): ParamSpec[] {
  const { dModel, dKv, dFf, numHeads, numBuckets, initializerFactor: f } = config;
  const inner = numHeads * dKv;
  const specs: ParamSpec[] = [];
  const normal = (std: number) => ({ kind: 'normal', std: f * std }) as const;
  const add = (name: string, shape: number[], init: ParamSpec['init']) => specs.push({ name, shape, init });
  const ones = { kind: 'ones' } as const;

  const attention = (prefix: string, withBias: boolean) => {
    add(`${prefix}.q.weight`, [inner, dModel], normal((dModel * dKv) ** -0.5));
    add(`${prefix}.k.weight`, [inner, dModel], normal(dModel ** -0.5));
    add(`${prefix}.v.weight`, [inner, dModel], normal(dModel ** -0.5));
    add(`${prefix}.o.weight`, [dModel, inner], normal((numHeads * dKv) ** -0.5));
    if (withBias) add(`${prefix}.relative_attention_bias.weight`, [numBuckets, numHeads], normal(dModel ** -0.5));
  };
  const feedForward = (prefix: string) => {
    if (config.gated) {
      add(`${prefix}.DenseReluDense.wi_0.weight`, [dFf, dModel], normal(dModel ** -0.5));
      add(`${prefix}.DenseReluDense.wi_1.weight`, [dFf, dModel], normal(dModel ** -0.5));
    } else {
      add(`${prefix}.DenseReluDense.wi.weight`, [dFf, dModel], normal(dModel ** -0.5));
    }
    add(`${prefix}.DenseReluDense.wo.weight`, [dModel, dFf], normal(dFf ** -0.5));
    add(`${prefix}.layer_norm.weight`, [dModel], ones);
  };

  add('shared.weight', [config.vocabSize, dModel], normal(1.0));
  for (let i = 0; i < config.numEncoderLayers; i++) {
    const b = `encoder.block.${i}`;
    attention(`${b}.layer.0.SelfAttention`, i === 0);
    add(`${b}.layer.0.layer_norm.weight`, [dModel], ones);
    feedForward(`${b}.layer.1`);
  }
  add('encoder.final_layer_norm.weight', [dModel], ones);
  for (let i = 0; i < config.numDecoderLayers; i++) {
    const b = `decoder.block.${i}`;
    attention(`${b}.layer.0.SelfAttention`, i === 0);
    add(`${b}.layer.0.layer_norm.weight`, [dModel], ones);
    attention(`${b}.layer.1.EncDecAttention`, false);
    add(`${b}.layer.1.layer_norm.weight`, [dModel], ones);
    feedForward(`${b}.layer.2`);
  }
  add('decoder.final_layer_norm.weight', [dModel], ones);
  if (!config.tieWordEmbeddings) add('lm_head.weight', [config.vocabSize, dModel], normal(1.0));
  return specs;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
