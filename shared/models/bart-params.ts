import type { BartConfig } from './bart-config.js';
import type { ParamSpec } from './t5-params.js';

// The parameters of BartForConditionalGeneration under their HF state-dict names, and its one
// buffer. Init as BartPreTrainedModel._init_weights: Linear and Embedding weights N(0, init_std),
// biases zero, the token embedding's padding_idx row zero, LayerNorm weight one and bias zero.
//
// [Note: BART layout] The flat layout is HF's named_parameters() order (the tied `model.shared`
// once, encoder then decoder; in a layer self_attn k, v, q, out, its norm, [encoder_attn and its
// norm,] fc1, fc2, final_layer_norm) with ONE deliberate move: each stack's `layernorm_embedding`,
// which HF registers after the stack's layers, sits right after the stack's `embed_positions`.
// The block engine hands gradients out in contiguous units from the end of the flat buffer to its
// start (worker/engine/block-plan.ts); the embedding block completes embed_positions and
// layernorm_embedding together, so they must be adjacent. Names, shapes and values are HF's; only
// the flat offsets differ, and nothing outside the flat buffer (safetensors, PEFT files) has an order.
//
// `final_logits_bias` [1, vocab] is a registered buffer, not a parameter: HF never trains it (it
// only changes when resize_token_embeddings grows it). It is fed like a frozen parameter
// (ModelFamily.frozenSpecs), loaded when a checkpoint has it, zeros otherwise, and has no gradient.

/** The tied token embedding: also stored by HF as the names in BART_TIED_ALIASES. */
export const BART_SHARED = 'model.shared.weight';

/** The buffer the head adds to the logits. */
export const BART_LOGITS_BIAS = 'final_logits_bias';

/** Names HF may store that alias `model.shared.weight` when the embeddings are tied. */
export function bartTiedAliases(config: BartConfig): string[] {
  const aliases = ['model.encoder.embed_tokens.weight', 'model.decoder.embed_tokens.weight'];
  if (config.tieWordEmbeddings) aliases.push('lm_head.weight');
  return aliases;
}

export type BartStack = 'encoder' | 'decoder';

/** The Linear modules of one layer (names after `model.<stack>.layers.<i>.`), with [out, in]. */
export function bartLinearModules(config: BartConfig, stack: BartStack): readonly { readonly module: string; readonly out: number; readonly in: number }[] {
  const d = config.dModel;
  const ffn = stack === 'encoder' ? config.encoderFfnDim : config.decoderFfnDim;
  const attention = (prefix: string) => ['k_proj', 'v_proj', 'q_proj', 'out_proj'].map((p) => ({ module: `${prefix}.${p}`, out: d, in: d }));
  return [
    ...attention('self_attn'),
    ...(stack === 'decoder' ? attention('encoder_attn') : []),
    { module: 'fc1', out: ffn, in: d },
    { module: 'fc2', out: d, in: ffn },
  ];
}

/** Parameter names inside one layer of `stack`, in HF order, with their shapes. */
export function bartLayerParams(config: BartConfig, stack: BartStack): { readonly local: string; readonly shape: readonly number[] }[] {
  const d = config.dModel;
  const linear = new Map(bartLinearModules(config, stack).map((m) => [m.module, m]));
  const out: { local: string; shape: readonly number[] }[] = [];
  const addLinear = (module: string) => {
    const m = linear.get(module)!;
    out.push({ local: `${module}.weight`, shape: [m.out, m.in] }, { local: `${module}.bias`, shape: [m.out] });
  };
  const addNorm = (module: string) => out.push({ local: `${module}.weight`, shape: [d] }, { local: `${module}.bias`, shape: [d] });
  for (const p of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) addLinear(`self_attn.${p}`);
  addNorm('self_attn_layer_norm');
  if (stack === 'decoder') {
    for (const p of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) addLinear(`encoder_attn.${p}`);
    addNorm('encoder_attn_layer_norm');
  }
  addLinear('fc1');
  addLinear('fc2');
  addNorm('final_layer_norm');
  return out;
}

/** HF's _init_weights for a parameter by its (local or full) name. */
function initOf(name: string, config: BartConfig): ParamSpec['init'] {
  const module = name.slice(0, name.lastIndexOf('.'));
  const isNorm = /layer_?norm[^.]*$/u.test(module);
  if (name.endsWith('.bias')) return { kind: 'zeros' };
  if (isNorm) return { kind: 'ones' };
  return { kind: 'normal', std: config.initStd };
}

/** The trainable parameters in flat-layout order ([Note: BART layout]). */
export function bartParamSpecs(config: BartConfig): ParamSpec[] {
  const d = config.dModel;
  const specs: ParamSpec[] = [
    { name: BART_SHARED, shape: [config.vocabSize, d], init: { kind: 'normal', std: config.initStd, zeroRow: config.padTokenId } },
  ];
  for (const stack of ['encoder', 'decoder'] as const) {
    const prefix = `model.${stack}`;
    specs.push({ name: `${prefix}.embed_positions.weight`, shape: [config.positionRows, d], init: { kind: 'normal', std: config.initStd } });
    specs.push({ name: `${prefix}.layernorm_embedding.weight`, shape: [d], init: { kind: 'ones' } });
    specs.push({ name: `${prefix}.layernorm_embedding.bias`, shape: [d], init: { kind: 'zeros' } });
    const layers = stack === 'encoder' ? config.encoderLayers : config.decoderLayers;
    const locals = bartLayerParams(config, stack);
    for (let i = 0; i < layers; i++) {
      for (const l of locals) specs.push({ name: `${prefix}.layers.${i}.${l.local}`, shape: l.shape, init: initOf(l.local, config) });
    }
  }
  if (!config.tieWordEmbeddings) specs.push({ name: 'lm_head.weight', shape: [config.vocabSize, d], init: { kind: 'normal', std: config.initStd } });
  return specs;
}

/** The buffer: fed, saved, never trained. */
export function bartBufferSpecs(config: BartConfig): ParamSpec[] {
  return [{ name: BART_LOGITS_BIAS, shape: [1, config.vocabSize], init: { kind: 'zeros' } }];
}

/** Every tensor an HF BartForConditionalGeneration folder holds once (tied aliases excluded). */
export function bartCheckpointSpecs(config: BartConfig): ParamSpec[] {
  return [...bartParamSpecs(config), ...bartBufferSpecs(config)];
}
