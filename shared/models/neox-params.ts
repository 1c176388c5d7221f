import type { NeoXConfig } from './neox-config.js';
import type { ParamSpec } from './t5-params.js';

// The trainable parameters of GPTNeoXForCausalLM in the order of its `named_parameters()` (module
// registration order: GPTNeoXModel registers embed_in, its layers, final_layer_norm; each
// GPTNeoXLayer input_layernorm, post_attention_layernorm, attention (query_key_value, dense), mlp
// (dense_h_to_4h, dense_4h_to_h); then the causal-LM head embed_out). The flat names are HF's
// state-dict names. Init as GPTNeoXPreTrainedModel._init_weights: Linear and Embedding weights
// N(0, initializer_range), biases zero, LayerNorm weight one and bias zero.

/** Parameter names inside one GPTNeoXLayer (HF names after `gpt_neox.layers.<i>.`), in order. */
export function neoxLayerLocalNames(): string[] {
  return [
    'input_layernorm.weight', 'input_layernorm.bias',
    'post_attention_layernorm.weight', 'post_attention_layernorm.bias',
    'attention.query_key_value.weight', 'attention.query_key_value.bias',
    'attention.dense.weight', 'attention.dense.bias',
    'mlp.dense_h_to_4h.weight', 'mlp.dense_h_to_4h.bias',
    'mlp.dense_4h_to_h.weight', 'mlp.dense_4h_to_h.bias',
  ];
}

/** Shape and init of a layer parameter by its local name. */
function layerParam(config: NeoXConfig, local: string): Omit<ParamSpec, 'name'> {
  const h = config.hiddenSize;
  const f = config.intermediateSize;
  const normal = { kind: 'normal', std: config.initializerRange } as const;
  const zeros = { kind: 'zeros' } as const;
  const shapes: Record<string, readonly number[]> = {
    'input_layernorm': [h], 'post_attention_layernorm': [h],
    'attention.query_key_value': [3 * h, h], 'attention.dense': [h, h],
    'mlp.dense_h_to_4h': [f, h], 'mlp.dense_4h_to_h': [h, f],
  };
  const module = local.slice(0, local.lastIndexOf('.'));
  const isNorm = module.endsWith('layernorm');
  const weightShape = shapes[module]!;
  if (local.endsWith('.bias')) return { shape: [weightShape[0]!], init: zeros };
  return { shape: weightShape, init: isNorm ? { kind: 'ones' } : normal };
}

export function neoxParamSpecs(config: NeoXConfig): ParamSpec[] {
  const h = config.hiddenSize;
  const normal = { kind: 'normal', std: config.initializerRange } as const;
  const specs: ParamSpec[] = [{ name: 'gpt_neox.embed_in.weight', shape: [config.vocabSize, h], init: normal }];
  for (let i = 0; i < config.numLayers; i++) {
    for (const local of neoxLayerLocalNames()) specs.push({ name: `gpt_neox.layers.${i}.${local}`, ...layerParam(config, local) });
  }
  specs.push(
    { name: 'gpt_neox.final_layer_norm.weight', shape: [h], init: { kind: 'ones' } },
    { name: 'gpt_neox.final_layer_norm.bias', shape: [h], init: { kind: 'zeros' } },
    { name: 'embed_out.weight', shape: [config.vocabSize, h], init: normal },
  );
  return specs;
}

/** Shape of a layer parameter by its local name (block graphs). */
export function neoxLayerParamShape(config: NeoXConfig, local: string): readonly number[] {
  return layerParam(config, local).shape;
}

/**
 * Non-parameter tensors that GPT-NeoX checkpoints saved by older transformers carry (registered
 * buffers: the [1, 1, n_ctx, n_ctx] causal mask `attention.bias`, `attention.masked_bias`, and
 * `attention.rotary_emb.inv_freq`): a loader must skip them, as transformers does. Not to be
 * confused with the parameters `attention.query_key_value.bias` / `attention.dense.bias`.
 */
export const NEOX_CHECKPOINT_BUFFER = /^gpt_neox\.layers\.\d+\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$/u;

export function isNeoXCheckpointBuffer(name: string): boolean {
  return NEOX_CHECKPOINT_BUFFER.test(name);
}
