import type { BlockDefinition } from '../autodiff/block-models.js';
import { GraphBuildError } from '../errors.js';
import type { FloatDType } from '../onnx/dtype.js';
import { Graph, type Value } from '../onnx/graph.js';
import { add, gather } from '../onnx/ops.js';
import type { T5Config } from './t5-config.js';
import { BATCH, SRC_LEN, T5_DATA_INPUTS, TGT_LEN } from './t5-graph.js';
import { loraAdapters, loraParamSpecs, PEFT_PREFIX, type LoraSettings } from './lora.js';
import { DropoutSites, rmsNorm, type DropoutSite, type LoraAdapter } from './t5-layers.js';
import { t5ParamSpecs } from './t5-params.js';
import { decoderBlock, encoderBlock, headAndLoss, keyMaskBias, positionBias } from './t5-stack-layers.js';

// T5ForConditionalGeneration cut into blocks (see [Note: block models]): the embedding lookup
// (used by both stacks), each stack's attention bias, each encoder layer, the encoder's final
// norm, each decoder layer, and the head with the loss. Layers of one stack share one graph:
// parameters are inputs named by their name inside the block, and the engine feeds each layer its
// own. As in HF, a stack computes its bias once (relative-position table, owned by block 0, plus
// the key or causal mask) and every layer adds it to its scores: the bias block's output is an
// input of every layer, so its gradient is the sum of the layers' (the engine adds them).

export type T5BlockKind = 'embed' | 'encoder.bias' | 'encoder.block' | 'encoder.final' | 'decoder.bias' | 'decoder.block' | 'head';
export const T5_BLOCK_KINDS: readonly T5BlockKind[] = ['embed', 'encoder.bias', 'encoder.block', 'encoder.final', 'decoder.bias', 'decoder.block', 'head'];

/** The stack's relative-position table (HF: block 0's relative_attention_bias). */
export const BIAS_LOCAL = 'layer.0.SelfAttention.relative_attention_bias.weight';
/** The embedding block's sequence dimension (the encoder's or the decoder's length). */
export const SEQ = 'seq';

export interface T5BlockGraph extends BlockDefinition {
  readonly kind: T5BlockKind;
  readonly dropoutSites: readonly DropoutSite[];
  /**
   * Parameter inputs that get no gradient: with LoRA, the base weights (`params` are then the
   * block's adapters, possibly none); empty without LoRA.
   */
  readonly frozen: readonly Value[];
}

export interface T5BlockOptions {
  readonly dtype: FloatDType;
  readonly dropout: boolean;
  /**
   * LoRA adapters on the targeted Linear layers ([Note: LoRA]): inputs `<module in the block>.lora_A.weight`
   * / `.lora_B.weight` (e.g. `layer.0.SelfAttention.q.lora_A.weight`), one lora_dropout site each
   * (`dropout.<module in the block>.lora_dropout`, the whole graph's site after the block's prefix).
   */
  readonly lora?: LoraSettings;
}

/**
 * The adapted modules of a stack's layer (names inside the layer) and their adapter shapes. Every
 * layer of a stack shares one graph, so every layer must adapt the same modules.
 */
export function layerAdapterSpecs(config: T5Config, stack: 'encoder' | 'decoder', lora: LoraSettings) {
  const all = loraParamSpecs(t5ParamSpecs(config), lora, 't5');
  const layers = stack === 'encoder' ? config.numEncoderLayers : config.numDecoderLayers;
  const perLayer = Array.from({ length: layers }, (_, i) => {
    const prefix = `${stack}.block.${i}.`;
    return all.filter((s) => s.module.startsWith(prefix)).map((s) => ({ ...s, local: s.name.slice(PEFT_PREFIX.length + prefix.length) }));
  });
  const first = perLayer[0] ?? [];
  perLayer.forEach((specs, i) => {
    if (specs.map((s) => s.local).join() !== first.map((s) => s.local).join()) {
      throw new GraphBuildError(`LoRA targets adapt different modules in ${stack}.block.0 and ${stack}.block.${i}; the block engine runs every layer of a stack with one graph`);
    }
  });
  return first;
}

/** Parameter names inside a stack's layer (HF names after `encoder.block.<i>.`), table excluded. */
export function layerLocalNames(config: T5Config, stack: 'encoder' | 'decoder'): string[] {
  const prefix = `${stack}.block.0.`;
  return t5ParamSpecs(config).filter((s) => s.name.startsWith(prefix) && !s.name.endsWith(BIAS_LOCAL)).map((s) => s.name.slice(prefix.length));
}

export function buildT5Block(kind: T5BlockKind, config: T5Config, options: T5BlockOptions): T5BlockGraph {
  const { dtype, lora } = options;
  if (lora) {
    const outside = loraParamSpecs(t5ParamSpecs(config), lora, 't5').filter((s) => !/^(encoder|decoder)\.block\.\d+\./u.test(s.module));
    if (outside.length > 0) throw new GraphBuildError(`T5 blocks: LoRA on ${[...new Set(outside.map((s) => s.module))].join(', ')} is not supported (only Linear layers inside encoder/decoder blocks)`);
  }
  const g = new Graph(`t5_${kind.replace('.', '_')}`);
  const dropout = new DropoutSites(g, options.dropout ? config.dropoutRate : 0, options.dropout);
  const specs = new Map(t5ParamSpecs(config).map((s) => [s.name, s]));
  const I = T5_DATA_INPUTS;
  const d = config.dModel;
  // With LoRA every base weight is frozen and the layers' adapters are the only parameters.
  let adapterParams: Value[] = [];
  const layerParams = (stack: 'encoder' | 'decoder') => {
    const locals = layerLocalNames(config, stack);
    const values = new Map(locals.map((l) => [l, g.input(l, dtype, specs.get(`${stack}.block.0.${l}`)!.shape)]));
    const adapterSpecs = lora ? layerAdapterSpecs(config, stack, lora) : [];
    const inputs = new Map(adapterSpecs.map((s) => [s.local, g.input(s.local, dtype, s.shape)]));
    adapterParams = [...inputs.values()];
    const prefix = `${stack}.block.0.`;
    const adapters: ReadonlyMap<string, LoraAdapter> = lora ? loraAdapters(adapterSpecs, lora, (s) => inputs.get(s.local)!) : new Map();
    const A = (module: string) => adapters.get(`${prefix}${module}`) ?? null;
    return { P: (local: string) => values.get(local)!, params: [...values.values()], A };
  };
  const H = config.numHeads;
  const split = (params: readonly Value[]) => (lora ? { params: adapterParams, frozen: params } : { params, frozen: [] });
  const block = (activations: BlockDefinition['activations'], params: BlockDefinition['params'], out: Value): T5BlockGraph => ({
    kind, graph: g, activations, ...split(params), outputs: [{ name: 'out', value: out }], dropoutSites: dropout.sites,
  });

  switch (kind) {
    case 'embed': {
      const table = g.input('weight', dtype, [config.vocabSize, d]);
      const ids = g.input('ids', 'int32', [BATCH, SEQ]);
      return block([], [table], dropout.apply(gather(table, ids, 0), 'embed'));
    }
    case 'encoder.bias': {
      // Without the key mask: a batch-independent [1, heads, s, s], so the gradient each layer
      // hands back is batch times smaller (tensors crossing sessions are copied; see the note).
      const table = g.input('weight', dtype, [config.numBuckets, H]);
      const buckets = g.input(I.encoderBuckets, 'int32', [SRC_LEN, SRC_LEN]);
      return block([], [table], positionBias(table, buckets));
    }
    case 'decoder.bias': {
      const table = g.input('weight', dtype, [config.numBuckets, H]);
      const buckets = g.input(I.decoderBuckets, 'int32', [TGT_LEN, TGT_LEN]);
      const causal = g.input(I.decoderCausalMask, dtype, [TGT_LEN, TGT_LEN]);
      return block([], [table], add(positionBias(table, buckets), causal));
    }
    case 'encoder.block': {
      const h = g.input('hidden', dtype, [BATCH, SRC_LEN, d]);
      const bias = g.input('bias', dtype, [1, H, SRC_LEN, SRC_LEN]);
      const mask = g.input(I.attentionMask, 'int32', [BATCH, SRC_LEN]);
      const { P, params, A } = layerParams('encoder');
      return block([h, bias], params, encoderBlock(h, add(bias, keyMaskBias(mask, dtype)), P, config, dropout, '', A));
    }
    case 'encoder.final': {
      const h = g.input('hidden', dtype, [BATCH, SRC_LEN, d]);
      const norm = g.input('final_layer_norm.weight', dtype, [d]);
      return block([h], [norm], dropout.apply(rmsNorm(h, norm, config.layerNormEpsilon), 'final'));
    }
    case 'decoder.block': {
      const h = g.input('hidden', dtype, [BATCH, TGT_LEN, d]);
      const encoderOut = g.input('encoder_out', dtype, [BATCH, SRC_LEN, d]);
      const selfBias = g.input('bias', dtype, [1, H, TGT_LEN, TGT_LEN]);
      const mask = g.input(I.attentionMask, 'int32', [BATCH, SRC_LEN]);
      const { P, params, A } = layerParams('decoder');
      return block([h, encoderOut, selfBias], params, decoderBlock(h, encoderOut, selfBias, keyMaskBias(mask, dtype), P, config, dropout, '', A));
    }
    case 'head': {
      const h = g.input('hidden', dtype, [BATCH, TGT_LEN, d]);
      const labels = g.input(I.labels, 'int32', [BATCH, TGT_LEN]);
      const norm = g.input('final_layer_norm.weight', dtype, [d]);
      const head = g.input('head.weight', dtype, [config.vocabSize, d]);
      const { lossSum, tokenCount } = headAndLoss(h, norm, head, labels, config, dropout, '');
      return {
        kind, graph: g, activations: [h], ...split([norm, head]), loss: lossSum, dropoutSites: dropout.sites,
        outputs: [{ name: 'loss_sum', value: lossSum }, { name: 'token_count', value: tokenCount }],
      };
    }
  }
}
