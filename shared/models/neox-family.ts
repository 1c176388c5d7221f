import * as ort from 'onnxruntime-node';
import { EngineError } from '../errors.js';
import type { FloatDType } from '../onnx/dtype.js';
import type { CausalLmBatch } from './causal-batch.js';
import type { BlockBuildOptions, BlockGraph, BlockInstance, ModelFamily } from './model-family.js';
import { buildNeoXBlock, NEOX_BLOCK_KINDS } from './neox-block-graphs.js';
import type { NeoXConfig } from './neox-config.js';
import { buildNeoXGraph, NEOX_DATA_INPUTS, NEOX_SEQ } from './neox-graph.js';
import { loraParamSpecs, loraScale, PEFT_PREFIX, type LoraSettings } from './lora.js';
import { loraParamShapes, neoxDropoutRate, type LoraOptions } from './neox-layers.js';
import { neoxLayerLocalNames, neoxParamSpecs } from './neox-params.js';
import type { DropoutSite } from './t5-layers.js';
import type { ParamSpec } from './t5-params.js';

// GPTNeoXForCausalLM as a model family ([Note: model family]): blocks embed -> layers 0..L-1 (stream
// 'hidden') -> head. Gradient units are HF modules, except that the final norm and embed_out form
// one unit 'head': the head block uses both, so they complete together (and they are adjacent at
// the end of the layout, so the units still tile it from the end to the start).

export class NeoXFamily implements ModelFamily<CausalLmBatch> {
  readonly modelType = 'gpt_neox' as const;
  readonly blockKinds = NEOX_BLOCK_KINDS;
  readonly vocabSize: number;
  readonly dropoutRate: number;

  /** With `lora`, only the adapters train ([Note: LoRA]): they are the flat layout, the base weights are frozen. */
  constructor(
    readonly config: NeoXConfig,
    readonly lora?: LoraOptions,
  ) {
    this.vocabSize = config.vocabSize;
    this.dropoutRate = neoxDropoutRate(config, lora);
  }

  /** The family for a run's PEFT settings. */
  static withLora(config: NeoXConfig, settings: LoraSettings | null): NeoXFamily {
    return new NeoXFamily(config, settings ? { r: settings.r, alpha: settings.alpha, targets: settings.targetModules, dropout: settings.dropout, scale: loraScale(settings) } : undefined);
  }

  /** The trainable parameters: the adapters (PEFT names and init, lora.ts) under LoRA, else the whole model. */
  paramSpecs(): ParamSpec[] {
    if (!this.lora) return neoxParamSpecs(this.config);
    const settings = { r: this.lora.r, alpha: this.lora.alpha, dropout: this.lora.dropout ?? 0, targetModules: this.lora.targets };
    return loraParamSpecs(neoxParamSpecs(this.config), settings, 'gpt_neox');
  }

  frozenSpecs(): ParamSpec[] {
    return this.lora ? neoxParamSpecs(this.config) : [];
  }

  buildBlock(kind: string, options: BlockBuildOptions): BlockGraph {
    return buildNeoXBlock(kind, this.config, { ...options, ...(this.lora ? { lora: this.lora } : {}) });
  }

  blockPlan(): BlockInstance[] {
    const c = this.config;
    const map = (pairs: [string, string][]) => new Map(pairs);
    const plan: BlockInstance[] = [{
      kind: 'embed', label: 'gpt_neox.embed_in', sitePrefix: '', params: map([['weight', 'gpt_neox.embed_in.weight']]),
      inputs: map([]), output: 'hidden', ids: { input: NEOX_DATA_INPUTS.inputIds, length: NEOX_SEQ },
    }];
    const adapters = loraParamShapes(c, this.lora).map((l) => l.local);
    for (let i = 0; i < c.numLayers; i++) {
      const prefix = `gpt_neox.layers.${i}`;
      plan.push({
        kind: 'layer', label: prefix, sitePrefix: `layers.${i}.`,
        params: map([...neoxLayerLocalNames().map((l): [string, string] => [l, `${prefix}.${l}`]), ...adapters.map((l): [string, string] => [l, `${PEFT_PREFIX}${prefix}.${l}`])]),
        inputs: map([['hidden', 'hidden']]), output: 'hidden',
      });
    }
    plan.push({
      kind: 'head', label: 'embed_out', sitePrefix: '', output: null, inputs: map([['hidden', 'hidden']]),
      params: map([['final_layer_norm.weight', 'gpt_neox.final_layer_norm.weight'], ['final_layer_norm.bias', 'gpt_neox.final_layer_norm.bias'], ['head.weight', 'embed_out.weight']]),
    });
    return plan;
  }

  moduleOf(peftOrHfName: string): string {
    const name = peftOrHfName.startsWith(PEFT_PREFIX) ? peftOrHfName.slice(PEFT_PREFIX.length) : peftOrHfName;
    const layer = /^(gpt_neox\.layers\.\d+)\./u.exec(name);
    if (layer) return layer[1]!;
    if (name.startsWith('gpt_neox.final_layer_norm.') || name.startsWith('embed_out.')) return 'head';
    if (name.startsWith('gpt_neox.embed_in.')) return 'gpt_neox.embed_in';
    throw new RangeError(`${name} is not a GPTNeoXForCausalLM parameter`);
  }

  wholeDropoutSites(dtype: FloatDType): readonly DropoutSite[] {
    return buildNeoXGraph(this.config, { dtype, dropout: true, gradients: false, ...(this.lora ? { lora: this.lora } : {}) }).dropoutSites;
  }

  feeds(batch: CausalLmBatch, _dtype: FloatDType): Record<string, ort.Tensor> {
    this.validate(batch);
    const { batchSize: b, seqLen: s } = batch;
    const I = NEOX_DATA_INPUTS;
    return {
      [I.inputIds]: new ort.Tensor('int32', batch.inputIds, [b, s]),
      [I.attentionMask]: new ort.Tensor('int32', batch.attentionMask, [b, s]),
      [I.positionIds]: new ort.Tensor('int32', positionIds(batch.attentionMask, b, s), [b, s]),
      [I.labels]: new ort.Tensor('int32', batch.labels, [b, s]),
    };
  }

  maskDims(batch: CausalLmBatch, _block: BlockInstance): Readonly<Record<string, number>> {
    return { batch: batch.batchSize, seq: batch.seqLen };
  }

  rows(batch: CausalLmBatch): number {
    return batch.batchSize;
  }

  /** Out-of-range ids would make ORT's Gather fail deep inside the graph; say which row instead. */
  private validate(batch: CausalLmBatch): void {
    const { batchSize: b, seqLen: s } = batch;
    if (batch.inputIds.length !== b * s || batch.attentionMask.length !== b * s || batch.labels.length !== b * s) {
      throw new EngineError(`batch arrays do not match [${b}, ${s}]`);
    }
    const v = this.vocabSize;
    const i = batch.inputIds.findIndex((x) => !(x >= 0 && x < v));
    if (i >= 0) throw new EngineError(`input_ids[${Math.floor(i / s)}][${i % s}] = ${batch.inputIds[i]} is outside the vocabulary (0..${v - 1})`);
    const l = batch.labels.findIndex((x) => !(x === -100 || (x >= 0 && x < v)));
    if (l >= 0) throw new EngineError(`labels[${Math.floor(l / s)}][${l % s}] = ${batch.labels[l]} is outside the vocabulary and not -100`);
    const m = batch.attentionMask.findIndex((x) => x !== 0 && x !== 1);
    if (m >= 0) throw new EngineError(`attention_mask[${Math.floor(m / s)}][${m % s}] = ${batch.attentionMask[m]} is not 0 or 1`);
  }
}

/**
 * HF generate's position ids: cumsum(mask) - 1, and 1 where the mask is 0. On right-padded training
 * rows this is 0, 1, 2, ... over the real tokens; on left-padded prompts it starts at the first real token.
 */
export function positionIds(mask: Int32Array, batchSize: number, seqLen: number): Int32Array {
  const out = new Int32Array(batchSize * seqLen);
  for (let r = 0; r < batchSize; r++) {
    let count = 0;
    for (let t = 0; t < seqLen; t++) {
      const k = r * seqLen + t;
      count += mask[k]!;
      out[k] = mask[k] === 0 ? 1 : count - 1;
    }
  }
  return out;
}
