import type { BlockInstance } from './model-family.js';
import { PEFT_PREFIX, type LoraSettings } from './lora.js';
import { BIAS_LOCAL, layerAdapterSpecs, layerLocalNames } from './t5-block-graphs.js';
import type { T5Config } from './t5-config.js';
import { T5_DATA_INPUTS } from './t5-graph.js';

// The blocks of one T5 in forward order (see worker/engine/block-plan.ts): the encoder's embedding,
// its attention bias, its layers, its final norm, then the decoder's embedding, bias, layers and the
// head. Streams: a stack's hidden state, its attention bias, the encoder output. Gradient units come
// out end to start: the shared embedding is complete after the encoder's embedding, a stack's block 0
// (which owns the relative-position table) after the stack's bias block.

/** With `lora`, each layer is also fed its adapters (PEFT names, [Note: LoRA]). */
export function t5BlockPlan(config: T5Config, lora?: LoraSettings): BlockInstance[] {
  const plan: BlockInstance[] = [];
  const add = (b: Omit<BlockInstance, 'params' | 'inputs'> & { params: [string, string][]; inputs?: [string, string][] }) =>
    plan.push({ ...b, params: new Map(b.params), inputs: new Map(b.inputs ?? []) });
  const table = (stack: string) => `${stack}.block.0.${BIAS_LOCAL}`;
  add({ kind: 'embed', label: 'encoder.embed_tokens', sitePrefix: 'encoder.', params: [['weight', 'shared.weight']], output: 'encoder.hidden', ids: { input: T5_DATA_INPUTS.inputIds, length: 'src_len' } });
  add({ kind: 'encoder.bias', label: 'encoder.position_bias', sitePrefix: 'encoder.', params: [['weight', table('encoder')]], output: 'encoder.bias' });
  const layer = (stack: 'encoder' | 'decoder', i: number, extra: [string, string][]) =>
    add({
      kind: `${stack}.block`, label: `${stack}.block.${i}`, sitePrefix: `${stack}.block.${i}.`,
      params: [
        ...layerLocalNames(config, stack).map((l): [string, string] => [l, `${stack}.block.${i}.${l}`]),
        ...(lora ? layerAdapterSpecs(config, stack, lora).map((s): [string, string] => [s.local, `${PEFT_PREFIX}${stack}.block.${i}.${s.local}`]) : []),
      ],
      inputs: [['hidden', `${stack}.hidden`], ['bias', `${stack}.bias`], ...extra], output: `${stack}.hidden`,
    });
  for (let i = 0; i < config.numEncoderLayers; i++) layer('encoder', i, []);
  add({ kind: 'encoder.final', label: 'encoder.final_layer_norm', sitePrefix: 'encoder.', params: [['final_layer_norm.weight', 'encoder.final_layer_norm.weight']], inputs: [['hidden', 'encoder.hidden']], output: 'encoder.out' });
  add({ kind: 'embed', label: 'decoder.embed_tokens', sitePrefix: 'decoder.', params: [['weight', 'shared.weight']], output: 'decoder.hidden', ids: { input: T5_DATA_INPUTS.decoderInputIds, length: 'tgt_len' } });
  add({ kind: 'decoder.bias', label: 'decoder.position_bias', sitePrefix: 'decoder.', params: [['weight', table('decoder')]], output: 'decoder.bias' });
  for (let i = 0; i < config.numDecoderLayers; i++) layer('decoder', i, [['encoder_out', 'encoder.out']]);
  const head = config.tieWordEmbeddings ? 'shared.weight' : 'lm_head.weight';
  add({
    kind: 'head', label: 'lm_head', sitePrefix: 'decoder.', output: null, inputs: [['hidden', 'decoder.hidden']],
    params: [['final_layer_norm.weight', 'decoder.final_layer_norm.weight'], ['head.weight', head]],
  });
  return plan;
}

/** The HF module a parameter belongs to: `shared`, `encoder.block.3`, `lm_head`, ... */
export function t5ModuleOf(peftOrHfName: string): string {
  const name = peftOrHfName.startsWith(PEFT_PREFIX) ? peftOrHfName.slice(PEFT_PREFIX.length) : peftOrHfName;
  const m = /^((?:en|de)coder\.block\.\d+)\./u.exec(name) ?? /^((?:en|de)coder\.final_layer_norm)\./u.exec(name) ?? /^([^.]+)\./u.exec(name);
  return m ? m[1]! : name;
}

