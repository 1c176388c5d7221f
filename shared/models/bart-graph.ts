import { gradientParts, gradients } from '../autodiff/backward.js';
import type { FloatDType } from '../onnx/dtype.js';
import { Graph, type Value } from '../onnx/graph.js';
import type { BartConfig } from './bart-config.js';
import { bartDecoderLayer, bartEmbed, bartEncoderLayer, bartHeadAndLoss, BartDropout, causalMaskBias, sequencePositions, type LayerAdapters } from './bart-layers.js';
import { bartLoraSpecs, bartLayerAdapters } from './bart-lora.js';
import { BART_LOGITS_BIAS, BART_SHARED, bartBufferSpecs, bartParamSpecs } from './bart-params.js';
import type { LoraParamSpec, LoraSettings } from './lora.js';
import type { ParamGradientOutputs } from './t5-graph.js';
import { keyMaskBias } from './t5-stack-layers.js';
import type { DropoutSite } from './t5-layers.js';
import type { ParamSpec } from './t5-params.js';

// BartForConditionalGeneration as one ONNX graph, the oracle of the block engine: parameters (and
// the final_logits_bias buffer) are graph inputs, the loss is a *sum* of token cross-entropies plus
// the token count, and the backward pass is appended by autodiff. The decoder inputs are fed
// (shift_tokens_right of the labels, bart-family.ts), as HF computes them from the labels.

export const BART_BATCH = 'batch';
export const BART_SRC_LEN = 'src_len';
export const BART_TGT_LEN = 'tgt_len';

/** Graph inputs besides parameters and dropout masks (bart-family.ts feeds them). */
export const BART_DATA_INPUTS = {
  inputIds: 'input_ids',
  attentionMask: 'attention_mask',
  decoderInputIds: 'decoder_input_ids',
  labels: 'labels',
} as const;

export interface BartGraphOptions {
  readonly dtype: FloatDType;
  /** Apply the config's dropout rates with fed masks (training). */
  readonly dropout: boolean;
  /** As T5GraphOptions.gradients: 'rows' (embedding lookups as row gradients), 'dense', or none. */
  readonly gradients: 'rows' | 'dense' | false;
  /** Also output `logits` [batch, tgt_len, vocab]. */
  readonly logits?: boolean;
  /** LoRA ([Note: LoRA]): only the adapters are differentiated; the base weights stay inputs. */
  readonly lora?: LoraSettings;
}

export interface BartGraph {
  readonly graph: Graph;
  /** The base model's parameters (inputs): trainable without LoRA, frozen with it. */
  readonly params: readonly ParamSpec[];
  /** final_logits_bias: an input, never differentiated. */
  readonly buffers: readonly ParamSpec[];
  readonly adapters: readonly LoraParamSpec[];
  readonly dropoutSites: readonly DropoutSite[];
  /** Gradient outputs of each trainable parameter (adapters with LoRA, else params), in order. */
  readonly gradientOutputs: readonly ParamGradientOutputs[];
}

export function buildBartGraph(config: BartConfig, options: BartGraphOptions): BartGraph {
  const g = new Graph('bart_for_conditional_generation');
  const { dtype } = options;
  const specs = bartParamSpecs(config);
  const buffers = bartBufferSpecs(config);
  const values = new Map<string, Value>([...specs, ...buffers].map((s) => [s.name, g.input(s.name, dtype, s.shape)]));
  const adapterSpecs = options.lora ? bartLoraSpecs(config, options.lora) : [];
  for (const s of adapterSpecs) values.set(s.name, g.input(s.name, dtype, s.shape));
  const P = (name: string): Value => values.get(name)!;
  const dropout = new BartDropout(g, config, options.lora?.dropout ?? 0, options.dropout);
  const I = BART_DATA_INPUTS;

  const inputIds = g.input(I.inputIds, 'int32', [BART_BATCH, BART_SRC_LEN]);
  const attentionMask = g.input(I.attentionMask, 'int32', [BART_BATCH, BART_SRC_LEN]);
  const decoderInputIds = g.input(I.decoderInputIds, 'int32', [BART_BATCH, BART_TGT_LEN]);
  const labels = g.input(I.labels, 'int32', [BART_BATCH, BART_TGT_LEN]);
  const keyBias = keyMaskBias(attentionMask, dtype);

  // A module's parameters by local name; a prelude's token table (`weight`, as bartEmbed reads it) is model.shared.
  const scoped = (prefix: string) => (local: string) => P(local === 'weight' ? BART_SHARED : `${prefix}.${local}`);
  const adaptersOf = (layerPrefix: string, site: string): LayerAdapters =>
    options.lora ? bartLayerAdapters(layerPrefix, options.lora, (name) => values.get(name) ?? null, site) : () => null;

  // ---- encoder: embeddings, then post-LN layers (no final norm in BART)
  let h = bartEmbed(inputIds, sequencePositions(inputIds), scoped('model.encoder'), config, dropout, 'encoder.');
  for (let i = 0; i < config.encoderLayers; i++) {
    const prefix = `model.encoder.layers.${i}`;
    h = bartEncoderLayer(h, scoped(prefix), config, keyBias, adaptersOf(prefix, `encoder.layers.${i}.`), dropout, `encoder.layers.${i}.`);
  }
  const encoderOut = h;

  // ---- decoder: causal self-attention (no decoder mask in training, as HF without decoder_attention_mask)
  const causal = causalMaskBias(decoderInputIds, dtype);
  let d = bartEmbed(decoderInputIds, sequencePositions(decoderInputIds), scoped('model.decoder'), config, dropout, 'decoder.');
  for (let i = 0; i < config.decoderLayers; i++) {
    const prefix = `model.decoder.layers.${i}`;
    d = bartDecoderLayer(d, encoderOut, scoped(prefix), config, causal, keyBias, adaptersOf(prefix, `decoder.layers.${i}.`), dropout, `decoder.layers.${i}.`);
  }

  // ---- head (tied to model.shared unless the config unties it) and loss
  const head = config.tieWordEmbeddings ? P(BART_SHARED) : P('lm_head.weight');
  const { lossSum, tokenCount, logits } = bartHeadAndLoss(d, head, P(BART_LOGITS_BIAS), labels, config);
  g.output('loss_sum', lossSum);
  g.output('token_count', tokenCount);
  if (options.logits) g.output('logits', logits);

  const trainable: readonly { readonly name: string }[] = options.lora ? adapterSpecs : specs;
  const wrt = trainable.map((s) => P(s.name));
  const gradientOutputs: ParamGradientOutputs[] = [];
  if (options.gradients === 'dense') {
    gradients([{ value: lossSum }], wrt).forEach((grad, i) => {
      const name = trainable[i]!.name;
      g.output(`grad.${name}`, grad);
      gradientOutputs.push({ dense: `grad.${name}`, rows: [] });
    });
  } else if (options.gradients === 'rows') {
    gradientParts([{ value: lossSum }], wrt).forEach((part, i) => {
      const name = trainable[i]!.name;
      if (part.dense) g.output(`grad.${name}`, part.dense);
      const rows = part.rows.map((r, k) => {
        g.output(`rows.${name}.${k}`, r.rows);
        g.output(`row_indices.${name}.${k}`, r.indices);
        return { indices: `row_indices.${name}.${k}`, rows: `rows.${name}.${k}` };
      });
      gradientOutputs.push({ dense: part.dense ? `grad.${name}` : null, rows });
    });
  }
  return { graph: g, params: specs, buffers, adapters: adapterSpecs, dropoutSites: dropout.sites, gradientOutputs };
}
