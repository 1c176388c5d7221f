import { Graph, type Value } from '../onnx/graph.js';
import { gather } from '../onnx/ops.js';
import type { BlockBuildOptions, BlockGraph } from './model-family.js';
import type { NeoXConfig } from './neox-config.js';
import { NEOX_BATCH, NEOX_DATA_INPUTS, NEOX_SEQ } from './neox-graph.js';
import { causalBias, loraParamShapes, neoxHeadAndLoss, neoxLayer, NeoXDropout, rotaryTables, type LoraOptions } from './neox-layers.js';
import { neoxLayerLocalNames, neoxLayerParamShape } from './neox-params.js';

// GPTNeoXForCausalLM cut into blocks (see [Note: block models]): the embedding lookup, one
// GPTNeoXLayer (every layer shares the graph; parameters are inputs named by their name inside the
// layer, fed per layer by the engine), and the head (final norm, embed_out, loss). Each layer block
// computes its own causal bias and rotary tables from the data inputs `attention_mask` and
// `position_ids` (a few elementwise ops per layer; no stream to carry between blocks). With LoRA the
// layer's trained parameters are its adapters only; the base weights are inputs without gradients.

export type NeoXBlockKind = 'embed' | 'layer' | 'head';
export const NEOX_BLOCK_KINDS: readonly NeoXBlockKind[] = ['embed', 'layer', 'head'];

export interface NeoXBlockOptions extends BlockBuildOptions {
  readonly lora?: LoraOptions;
}

export function buildNeoXBlock(kind: string, config: NeoXConfig, options: NeoXBlockOptions): BlockGraph {
  const { dtype, lora } = options;
  const g = new Graph(`gpt_neox_${kind}`);
  const dropout = new NeoXDropout(g, config, lora, options.dropout);
  const I = NEOX_DATA_INPUTS;
  const h = config.hiddenSize;
  const block = (activations: Value[], params: Value[], out: Value): BlockGraph => ({
    kind, graph: g, activations, params, outputs: [{ name: 'out', value: out }], dropoutSites: dropout.sites,
  });
  switch (kind) {
    case 'embed': {
      const table = g.input('weight', dtype, [config.vocabSize, h]);
      const ids = g.input('ids', 'int32', [NEOX_BATCH, NEOX_SEQ]);
      // Under LoRA the embedding is frozen: nothing in this block is differentiated.
      return block([], lora ? [] : [table], dropout.apply(gather(table, ids, 0), 'embed', 'hidden'));
    }
    case 'layer': {
      const hidden = g.input('hidden', dtype, [NEOX_BATCH, NEOX_SEQ, h]);
      const mask = g.input(I.attentionMask, 'int32', [NEOX_BATCH, NEOX_SEQ]);
      const positions = g.input(I.positionIds, 'int32', [NEOX_BATCH, NEOX_SEQ]);
      const values = new Map<string, Value>(neoxLayerLocalNames().map((l) => [l, g.input(l, dtype, neoxLayerParamShape(config, l))]));
      const adapters = loraParamShapes(config, lora).map((l) => g.input(l.local, dtype, l.shape));
      for (const a of adapters) values.set(a.name, a);
      const out = neoxLayer(hidden, (local) => values.get(local)!, config, causalBias(mask, dtype), rotaryTables(positions, config, dtype), lora, dropout, '');
      return block([hidden], lora ? adapters : neoxLayerLocalNames().map((l) => values.get(l)!), out);
    }
    case 'head': {
      const hidden = g.input('hidden', dtype, [NEOX_BATCH, NEOX_SEQ, h]);
      const labels = g.input(I.labels, 'int32', [NEOX_BATCH, NEOX_SEQ]);
      const weight = g.input('final_layer_norm.weight', dtype, [h]);
      const bias = g.input('final_layer_norm.bias', dtype, [h]);
      const head = g.input('head.weight', dtype, [config.vocabSize, h]);
      const { lossSum, tokenCount } = neoxHeadAndLoss(hidden, { weight, bias }, head, labels, config);
      return {
        kind, graph: g, activations: [hidden], params: lora ? [] : [weight, bias, head], loss: lossSum, dropoutSites: dropout.sites,
        outputs: [{ name: 'loss_sum', value: lossSum }, { name: 'token_count', value: tokenCount }],
      };
    }
    default:
      throw new RangeError(`GPT-NeoX has no block kind '${kind}' (kinds: ${NEOX_BLOCK_KINDS.join(', ')})`);
  }
}
