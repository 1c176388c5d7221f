import { gradientParts, gradients } from '../autodiff/backward.js';
import type { FloatDType } from '../onnx/dtype.js';
import { Graph, type Value } from '../onnx/graph.js';
import { gather } from '../onnx/ops.js';
import type { NeoXConfig } from './neox-config.js';
import { PEFT_PREFIX } from './lora.js';
import { causalBias, loraParamShapes, neoxHeadAndLoss, neoxLayer, NeoXDropout, rotaryTables, type LoraOptions } from './neox-layers.js';
import { neoxParamSpecs } from './neox-params.js';
import type { ParamGradientOutputs } from './t5-graph.js';
import type { DropoutSite } from './t5-layers.js';
import type { ParamSpec } from './t5-params.js';

// GPTNeoXForCausalLM as one ONNX graph, as t5-graph.ts does for T5: parameters are graph inputs,
// the loss is a *sum* of token cross-entropies plus the token count, and the backward pass is
// appended by autodiff. With LoRA the adapters are further inputs `<layer>.<module>.lora_A.weight`
// / `.lora_B.weight` (flat names `gpt_neox.layers.<i>.…`, PEFT's names without its `base_model.model.`
// prefix), and gradients are output for them only (the base model is frozen).

export const NEOX_BATCH = 'batch';
export const NEOX_SEQ = 'seq';

/** Graph inputs besides parameters and dropout masks (see NeoXFamily.feeds). */
export const NEOX_DATA_INPUTS = {
  inputIds: 'input_ids',
  attentionMask: 'attention_mask',
  positionIds: 'position_ids',
  labels: 'labels',
} as const;

export interface NeoXGraphOptions {
  readonly dtype: FloatDType;
  /** Apply the config's (and LoRA's) dropout with fed masks (training). */
  readonly dropout: boolean;
  /** 'rows' leaves the embedding lookup as row gradients; 'dense' one dense gradient per parameter; false none. */
  readonly gradients: 'rows' | 'dense' | false;
  /** Also output `logits` [batch, seq, vocab]. */
  readonly logits?: boolean;
  readonly lora?: LoraOptions;
}

export interface NeoXGraph {
  readonly graph: Graph;
  /** The base model's parameters (the flat layout). */
  readonly params: readonly ParamSpec[];
  /** LoRA adapter inputs, layer by layer (empty without LoRA); their init is NeoXFamily.loraParamSpecs'. */
  readonly loraParams: readonly { readonly name: string; readonly shape: readonly number[] }[];
  readonly dropoutSites: readonly DropoutSite[];
  /** Gradient outputs of the trained parameters (LoRA adapters with LoRA, else every parameter), in order. */
  readonly gradientOutputs: readonly ParamGradientOutputs[];
}

export function buildNeoXGraph(config: NeoXConfig, options: NeoXGraphOptions): NeoXGraph {
  const g = new Graph('gpt_neox_for_causal_lm');
  const { dtype, lora } = options;
  const specs = neoxParamSpecs(config);
  const p = new Map<string, Value>(specs.map((s) => [s.name, g.input(s.name, dtype, s.shape)]));
  const loraShapes = loraParamShapes(config, lora);
  const loraParams: { name: string; shape: readonly number[] }[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    for (const l of loraShapes) {
      // Looked up by the layer under its HF-style name; the input is PEFT's name (the flat name).
      const name = `gpt_neox.layers.${i}.${l.local}`;
      p.set(name, g.input(`${PEFT_PREFIX}${name}`, dtype, l.shape));
      loraParams.push({ name: `${PEFT_PREFIX}${name}`, shape: l.shape });
    }
  }
  const P = (name: string): Value => p.get(name)!;
  const dropout = new NeoXDropout(g, config, lora, options.dropout);
  const I = NEOX_DATA_INPUTS;
  const inputIds = g.input(I.inputIds, 'int32', [NEOX_BATCH, NEOX_SEQ]);
  const attentionMask = g.input(I.attentionMask, 'int32', [NEOX_BATCH, NEOX_SEQ]);
  const positionIds = g.input(I.positionIds, 'int32', [NEOX_BATCH, NEOX_SEQ]);
  const labels = g.input(I.labels, 'int32', [NEOX_BATCH, NEOX_SEQ]);

  const bias = causalBias(attentionMask, dtype);
  const rotary = rotaryTables(positionIds, config, dtype);
  let h = dropout.apply(gather(P('gpt_neox.embed_in.weight'), inputIds, 0), 'embed', 'hidden');
  for (let i = 0; i < config.numLayers; i++) {
    h = neoxLayer(h, (local) => P(`gpt_neox.layers.${i}.${local}`), config, bias, rotary, lora, dropout, `layers.${i}.`);
  }
  const norm = { weight: P('gpt_neox.final_layer_norm.weight'), bias: P('gpt_neox.final_layer_norm.bias') };
  const { lossSum, tokenCount, logits } = neoxHeadAndLoss(h, norm, P('embed_out.weight'), labels, config);
  g.output('loss_sum', lossSum);
  g.output('token_count', tokenCount);
  if (options.logits) g.output('logits', logits);

  const trained = lora ? loraParams.map((l) => l.name) : specs.map((s) => s.name);
  const gradientOutputs: ParamGradientOutputs[] = [];
  // Adapters are looked up under their HF-style names (see above); their outputs carry PEFT's.
  const wrt = trained.map((name) => P(lora ? name.slice(PEFT_PREFIX.length) : name));
  if (options.gradients === 'dense') {
    gradients([{ value: lossSum }], wrt).forEach((grad, i) => {
      g.output(`grad.${trained[i]}`, grad);
      gradientOutputs.push({ dense: `grad.${trained[i]}`, rows: [] });
    });
  } else if (options.gradients === 'rows') {
    gradientParts([{ value: lossSum }], wrt).forEach((part, i) => {
      const name = trained[i]!;
      if (part.dense) g.output(`grad.${name}`, part.dense);
      const rows = part.rows.map((r, k) => {
        g.output(`rows.${name}.${k}`, r.rows);
        g.output(`row_indices.${name}.${k}`, r.indices);
        return { indices: `row_indices.${name}.${k}`, rows: `rows.${name}.${k}` };
      });
      gradientOutputs.push({ dense: part.dense ? `grad.${name}` : null, rows });
    });
  }
  return { graph: g, params: specs, loraParams, dropoutSites: dropout.sites, gradientOutputs };
}
