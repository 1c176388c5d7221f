import * as ort from 'onnxruntime-node';
import { EngineError } from '../errors.js';
import type { FloatDType } from '../onnx/dtype.js';
import type { Seq2SeqBatch } from './batch.js';
import type { BartConfig } from './bart-config.js';
import { BART_BLOCK_KINDS, buildBartBlock } from './bart-block-graphs.js';
import { BART_DATA_INPUTS, buildBartGraph } from './bart-graph.js';
import { bartDropoutRate } from './bart-layers.js';
import { bartLayerAdapterSpecs, bartLoraSpecs } from './bart-lora.js';
import { BART_LOGITS_BIAS, BART_SHARED, bartBufferSpecs, bartLayerParams, bartParamSpecs, type BartStack } from './bart-params.js';
import { PEFT_PREFIX, type LoraSettings } from './lora.js';
import type { BlockBuildOptions, BlockGraph, BlockInstance, ModelFamily } from './model-family.js';
import type { DropoutSite } from './t5-layers.js';
import type { ParamSpec } from './t5-params.js';
import { shiftRight } from './t5-position-buckets.js';

// BartForConditionalGeneration as a model family ([Note: model family]). Blocks in forward order:
// the encoder's embedding prelude, its layers (stream 'encoder.hidden'; the last one writes
// 'encoder.out', which every decoder layer reads), the decoder's prelude and layers (stream
// 'decoder.hidden'), the head. model.shared is read by both preludes and the head: its gradient is
// the sum of the three, complete after the encoder prelude's backward. Gradient units are HF
// modules, a stack's prelude (embed_positions + layernorm_embedding, adjacent in the flat layout:
// [Note: BART layout]) one unit. final_logits_bias is frozen: fed, never differentiated.

export class BartFamily implements ModelFamily<Seq2SeqBatch> {
  readonly modelType = 'bart' as const;
  readonly blockKinds: readonly string[] = BART_BLOCK_KINDS;
  readonly vocabSize: number;
  readonly dropoutRate: number;

  /** With `lora`, only the adapters train ([Note: LoRA]); the base weights are frozen. */
  constructor(
    readonly config: BartConfig,
    readonly lora: LoraSettings | null = null,
  ) {
    this.vocabSize = config.vocabSize;
    this.dropoutRate = bartDropoutRate(config, lora?.dropout ?? 0);
    if (lora) bartLoraSpecs(config, lora); // refuse bad targets where the family is made
  }

  paramSpecs(): ParamSpec[] {
    return this.lora ? bartLoraSpecs(this.config, this.lora) : bartParamSpecs(this.config);
  }

  /** The final_logits_bias buffer, after the base model under LoRA. */
  frozenSpecs(): ParamSpec[] {
    return [...(this.lora ? bartParamSpecs(this.config) : []), ...bartBufferSpecs(this.config)];
  }

  buildBlock(kind: string, options: BlockBuildOptions): BlockGraph {
    return buildBartBlock(kind, this.config, { ...options, ...(this.lora ? { lora: this.lora } : {}) });
  }

  blockPlan(): BlockInstance[] {
    const c = this.config;
    const plan: BlockInstance[] = [];
    const add = (b: Omit<BlockInstance, 'params' | 'inputs'> & { params: [string, string][]; inputs?: [string, string][] }) =>
      plan.push({ ...b, params: new Map(b.params), inputs: new Map(b.inputs ?? []) });
    const prelude = (stack: BartStack, ids: string, length: string) =>
      add({
        kind: 'embed', label: `model.${stack}.embed_tokens`, sitePrefix: `${stack}.`, output: `${stack}.hidden`, ids: { input: ids, length },
        params: [
          ['weight', BART_SHARED],
          ...['embed_positions.weight', 'layernorm_embedding.weight', 'layernorm_embedding.bias'].map((l): [string, string] => [l, `model.${stack}.${l}`]),
        ],
      });
    const layerParams = (stack: BartStack, i: number): [string, string][] => [
      ...bartLayerParams(c, stack).map((p): [string, string] => [p.local, `model.${stack}.layers.${i}.${p.local}`]),
      ...(this.lora ? bartLayerAdapterSpecs(c, stack, this.lora).map((s): [string, string] => [s.local, `${PEFT_PREFIX}model.${stack}.layers.${i}.${s.local}`]) : []),
    ];
    prelude('encoder', BART_DATA_INPUTS.inputIds, 'src_len');
    for (let i = 0; i < c.encoderLayers; i++) {
      add({
        kind: 'encoder.layer', label: `model.encoder.layers.${i}`, sitePrefix: `encoder.layers.${i}.`, params: layerParams('encoder', i),
        inputs: [['hidden', 'encoder.hidden']], output: i === c.encoderLayers - 1 ? 'encoder.out' : 'encoder.hidden',
      });
    }
    prelude('decoder', BART_DATA_INPUTS.decoderInputIds, 'tgt_len');
    for (let i = 0; i < c.decoderLayers; i++) {
      add({
        kind: 'decoder.layer', label: `model.decoder.layers.${i}`, sitePrefix: `decoder.layers.${i}.`, params: layerParams('decoder', i),
        inputs: [['hidden', 'decoder.hidden'], ['encoder_out', 'encoder.out']], output: 'decoder.hidden',
      });
    }
    add({
      kind: 'head', label: 'lm_head', sitePrefix: 'decoder.', output: null, inputs: [['hidden', 'decoder.hidden']],
      params: [['head.weight', c.tieWordEmbeddings ? BART_SHARED : 'lm_head.weight'], [BART_LOGITS_BIAS, BART_LOGITS_BIAS]],
    });
    return plan;
  }

  moduleOf(peftOrHfName: string): string {
    const name = peftOrHfName.startsWith(PEFT_PREFIX) ? peftOrHfName.slice(PEFT_PREFIX.length) : peftOrHfName;
    const layer = /^(model\.(?:en|de)coder\.layers\.\d+)\./u.exec(name);
    if (layer) return layer[1]!;
    const prelude = /^(model\.(?:en|de)coder)\.(?:embed_positions|layernorm_embedding)\./u.exec(name);
    if (prelude) return `${prelude[1]!}.prelude`;
    if (name === BART_SHARED) return 'model.shared';
    if (name === 'lm_head.weight') return 'lm_head';
    // The frozen buffer is a unit of its own where frozen tensors are sharded (ZeRO-3's frozen units).
    if (name === BART_LOGITS_BIAS) return BART_LOGITS_BIAS;
    throw new RangeError(`${name} is not a BartForConditionalGeneration parameter`);
  }

  wholeDropoutSites(dtype: FloatDType): readonly DropoutSite[] {
    return buildBartGraph(this.config, { dtype, dropout: true, gradients: false, ...(this.lora ? { lora: this.lora } : {}) }).dropoutSites;
  }

  /** The data inputs: decoder_input_ids = shift_tokens_right(labels, pad, decoder_start_token_id), as HF's BartForConditionalGeneration. */
  feeds(batch: Seq2SeqBatch, _dtype: FloatDType): Record<string, ort.Tensor> {
    this.validate(batch);
    const { batchSize: b, srcLen: s, tgtLen: t } = batch;
    const c = this.config;
    const I = BART_DATA_INPUTS;
    return {
      [I.inputIds]: new ort.Tensor('int32', batch.inputIds, [b, s]),
      [I.attentionMask]: new ort.Tensor('int32', batch.attentionMask, [b, s]),
      [I.decoderInputIds]: new ort.Tensor('int32', shiftRight(batch.labels, b, t, c.decoderStartTokenId, c.padTokenId), [b, t]),
      [I.labels]: new ort.Tensor('int32', batch.labels, [b, t]),
    };
  }

  maskDims(batch: Seq2SeqBatch, block: BlockInstance): Readonly<Record<string, number>> {
    const seq = block.ids?.length === 'tgt_len' ? batch.tgtLen : batch.srcLen;
    return { batch: batch.batchSize, src_len: batch.srcLen, tgt_len: batch.tgtLen, seq };
  }

  rows(batch: Seq2SeqBatch): number {
    return batch.batchSize;
  }

  /** Out-of-range ids or lengths past the position table would fail deep inside ORT's Gather; say which instead. */
  private validate(batch: Seq2SeqBatch): void {
    const { batchSize: b, srcLen: s, tgtLen: t } = batch;
    if (batch.inputIds.length !== b * s || batch.attentionMask.length !== b * s || batch.labels.length !== b * t) {
      throw new EngineError(`batch arrays do not match [${b}, ${s}] / [${b}, ${t}]`);
    }
    const max = this.config.maxPositionEmbeddings;
    if (s > max || t > max) throw new EngineError(`sequence length ${Math.max(s, t)} is past BART's max_position_embeddings ${max} (learned positions)`);
    const v = this.vocabSize;
    const i = batch.inputIds.findIndex((x) => !(x >= 0 && x < v));
    if (i >= 0) throw new EngineError(`input_ids[${Math.floor(i / s)}][${i % s}] = ${batch.inputIds[i]} is outside the vocabulary (0..${v - 1})`);
    const l = batch.labels.findIndex((x) => !(x === -100 || (x >= 0 && x < v)));
    if (l >= 0) throw new EngineError(`labels[${Math.floor(l / t)}][${l % t}] = ${batch.labels[l]} is outside the vocabulary and not -100`);
  }
}
