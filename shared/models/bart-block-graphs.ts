import { Graph, type Value } from '../onnx/graph.js';
import type { BartConfig } from './bart-config.js';
import { BART_BATCH, BART_DATA_INPUTS, BART_SRC_LEN, BART_TGT_LEN } from './bart-graph.js';
import { bartDecoderLayer, bartEmbed, bartEncoderLayer, bartHeadAndLoss, BartDropout, causalMaskBias, NO_ADAPTERS, sequencePositions } from './bart-layers.js';
import { bartLayerAdapterSpecs, layerAdaptersFrom } from './bart-lora.js';
import { BART_LOGITS_BIAS, bartLayerParams, type BartStack } from './bart-params.js';
import type { LoraSettings } from './lora.js';
import type { BlockBuildOptions, BlockGraph } from './model-family.js';
import { keyMaskBias } from './t5-stack-layers.js';

// BartForConditionalGeneration cut into blocks (see [Note: block models]): the embedding prelude
// (token lookup, learned positions, layernorm_embedding; one graph for both stacks, fed each
// stack's tables), an encoder layer, a decoder layer (every layer of a stack shares the graph,
// parameters are inputs named by their name inside the layer), and the head (LM head tied to
// model.shared, plus the final_logits_bias buffer, and the loss). Masks are made inside the blocks
// from the data inputs (the key-padding bias from attention_mask, the causal bias from the decoder
// ids' length): a few elementwise ops per layer, no stream to carry. Under LoRA a layer's trained
// parameters are its adapters; the base weights (and always final_logits_bias) are inputs without gradients.

export type BartBlockKind = 'embed' | 'encoder.layer' | 'decoder.layer' | 'head';
export const BART_BLOCK_KINDS: readonly BartBlockKind[] = ['embed', 'encoder.layer', 'decoder.layer', 'head'];

/** The embedding block's sequence dimension (the encoder's or the decoder's length). */
export const BART_SEQ = 'seq';

export interface BartBlockOptions extends BlockBuildOptions {
  readonly lora?: LoraSettings;
}

export function buildBartBlock(kind: string, config: BartConfig, options: BartBlockOptions): BlockGraph {
  const { dtype, lora } = options;
  const g = new Graph(`bart_${kind.replace('.', '_')}`);
  const dropout = new BartDropout(g, config, lora?.dropout ?? 0, options.dropout);
  const I = BART_DATA_INPUTS;
  const d = config.dModel;
  const block = (activations: Value[], params: Value[], out: Value): BlockGraph => ({
    kind, graph: g, activations, params, outputs: [{ name: 'out', value: out }], dropoutSites: dropout.sites,
  });
  const layer = (stack: BartStack) => {
    const values = new Map(bartLayerParams(config, stack).map((p) => [p.local, g.input(p.local, dtype, p.shape)]));
    const adapters = lora ? bartLayerAdapterSpecs(config, stack, lora).map((s) => g.input(s.local, dtype, s.shape)) : [];
    const byName = new Map(adapters.map((a) => [a.name, a]));
    return {
      P: (local: string) => values.get(local)!,
      A: lora ? layerAdaptersFrom((local) => byName.get(local) ?? null, lora, '') : NO_ADAPTERS,
      params: lora ? adapters : [...values.values()],
    };
  };
  switch (kind) {
    case 'embed': {
      const table = g.input('weight', dtype, [config.vocabSize, d]);
      const positions = g.input('embed_positions.weight', dtype, [config.positionRows, d]);
      const normW = g.input('layernorm_embedding.weight', dtype, [d]);
      const normB = g.input('layernorm_embedding.bias', dtype, [d]);
      const ids = g.input('ids', 'int32', [BART_BATCH, BART_SEQ]);
      const named = new Map([table, positions, normW, normB].map((v) => [v.name, v]));
      const out = bartEmbed(ids, sequencePositions(ids), (l) => named.get(l)!, config, dropout, '');
      // Under LoRA the prelude is frozen: nothing in this block is differentiated.
      return block([], lora ? [] : [table, positions, normW, normB], out);
    }
    case 'encoder.layer': {
      const hidden = g.input('hidden', dtype, [BART_BATCH, BART_SRC_LEN, d]);
      const mask = g.input(I.attentionMask, 'int32', [BART_BATCH, BART_SRC_LEN]);
      const { P, A, params } = layer('encoder');
      return block([hidden], params, bartEncoderLayer(hidden, P, config, keyMaskBias(mask, dtype), A, dropout, ''));
    }
    case 'decoder.layer': {
      const hidden = g.input('hidden', dtype, [BART_BATCH, BART_TGT_LEN, d]);
      const encoderOut = g.input('encoder_out', dtype, [BART_BATCH, BART_SRC_LEN, d]);
      const mask = g.input(I.attentionMask, 'int32', [BART_BATCH, BART_SRC_LEN]);
      const decoderIds = g.input(I.decoderInputIds, 'int32', [BART_BATCH, BART_TGT_LEN]);
      const { P, A, params } = layer('decoder');
      const out = bartDecoderLayer(hidden, encoderOut, P, config, causalMaskBias(decoderIds, dtype), keyMaskBias(mask, dtype), A, dropout, '');
      return block([hidden, encoderOut], params, out);
    }
    case 'head': {
      const hidden = g.input('hidden', dtype, [BART_BATCH, BART_TGT_LEN, d]);
      const labels = g.input(I.labels, 'int32', [BART_BATCH, BART_TGT_LEN]);
      const head = g.input('head.weight', dtype, [config.vocabSize, d]);
      const bias = g.input(BART_LOGITS_BIAS, dtype, [1, config.vocabSize]);
      const { lossSum, tokenCount } = bartHeadAndLoss(hidden, head, bias, labels, config);
      return {
        kind, graph: g, activations: [hidden], params: lora ? [] : [head], loss: lossSum, dropoutSites: dropout.sites,
        outputs: [{ name: 'loss_sum', value: lossSum }, { name: 'token_count', value: tokenCount }],
      };
    }
    default:
      throw new RangeError(`BART has no block kind '${kind}' (kinds: ${BART_BLOCK_KINDS.join(', ')})`);
  }
}
