import type * as ort from 'onnxruntime-node';
import type { FloatDType } from '../onnx/dtype.js';
import type { Seq2SeqBatch } from './batch.js';
import type { BlockBuildOptions, BlockGraph, BlockInstance, ModelFamily } from './model-family.js';
import { buildT5Block, T5_BLOCK_KINDS, type T5BlockKind } from './t5-block-graphs.js';
import { t5BlockPlan, t5ModuleOf } from './t5-block-plan.js';
import { loraParamSpecs, type LoraSettings } from './lora.js';
import type { T5Config } from './t5-config.js';
import { T5Feeds } from './t5-feeds.js';
import { buildT5Graph } from './t5-graph.js';
import type { DropoutSite } from './t5-layers.js';
import { t5ParamSpecs, type ParamSpec } from './t5-params.js';

/** T5ForConditionalGeneration as a model family ([Note: model family]). */
export class T5Family implements ModelFamily<Seq2SeqBatch> {
  readonly modelType = 't5';
  readonly blockKinds: readonly string[] = T5_BLOCK_KINDS;
  private readonly feedsByDtype = new Map<FloatDType, T5Feeds>();

  /** With `lora`, only the adapters train ([Note: LoRA]); the base weights are frozen. */
  constructor(
    readonly config: T5Config,
    readonly lora: LoraSettings | null = null,
  ) {}

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  get dropoutRate(): number {
    return this.config.dropoutRate;
  }

  paramSpecs(): ParamSpec[] {
    return this.lora ? loraParamSpecs(t5ParamSpecs(this.config), this.lora, 't5') : t5ParamSpecs(this.config);
  }

  frozenSpecs(): ParamSpec[] {
    return this.lora ? t5ParamSpecs(this.config) : [];
  }

  buildBlock(kind: string, options: BlockBuildOptions): BlockGraph {
    if (!(T5_BLOCK_KINDS as readonly string[]).includes(kind)) throw new RangeError(`T5 has no block kind ${kind}`);
    return buildT5Block(kind as T5BlockKind, this.config, { ...options, ...(this.lora ? { lora: this.lora } : {}) });
  }

  blockPlan(): BlockInstance[] {
    return t5BlockPlan(this.config, this.lora ?? undefined);
  }

  moduleOf(name: string): string {
    return t5ModuleOf(name);
  }

  wholeDropoutSites(dtype: FloatDType): readonly DropoutSite[] {
    return buildT5Graph(this.config, { dtype, dropout: true, gradients: false, ...(this.lora ? { lora: this.lora } : {}) }).dropoutSites;
  }

  feeds(batch: Seq2SeqBatch, dtype: FloatDType): Record<string, ort.Tensor> {
    let f = this.feedsByDtype.get(dtype);
    if (!f) this.feedsByDtype.set(dtype, (f = new T5Feeds(this.config, dtype)));
    return f.feeds(batch);
  }

  maskDims(batch: Seq2SeqBatch, block: BlockInstance): Readonly<Record<string, number>> {
    const seq = block.ids?.length === 'tgt_len' ? batch.tgtLen : batch.srcLen;
    return { batch: batch.batchSize, src_len: batch.srcLen, tgt_len: batch.tgtLen, seq };
  }

  rows(batch: Seq2SeqBatch): number {
    return batch.batchSize;
  }
}
