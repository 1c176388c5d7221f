import type * as ort from 'onnxruntime-node';
import type { BlockDefinition } from '../autodiff/block-models.js';
import type { FloatDType } from '../onnx/dtype.js';
import type { Seq2SeqBatch } from './batch.js';
import type { CausalLmBatch } from './causal-batch.js';
import type { DropoutSite } from './t5-layers.js';
import type { ParamSpec } from './t5-params.js';

// [Note: model family] What the block engine needs to know about a model, and nothing else: its
// parameters (HF names and order = the flat layout), its block kinds and how to build each one's
// graph, the plan (which block instances run in which order, fed which parameters and streams),
// the HF module a parameter belongs to (gradient units), and the data feeds of a batch. T5
// (encoder-decoder, Seq2SeqBatch) and GPT-NeoX (decoder-only, CausalLmBatch) implement it; the
// engine, ZeRO, checkpoints and the optimizer never look at which one they run. BART (encoder-decoder,
// Seq2SeqBatch) is the third.

export type ModelBatch = Seq2SeqBatch | CausalLmBatch;

export interface BlockGraph extends BlockDefinition {
  readonly kind: string;
  readonly dropoutSites: readonly DropoutSite[];
}

export interface BlockInstance {
  readonly kind: string;
  /** The HF module it stands for, e.g. `encoder.block.3` (logs and errors). */
  readonly label: string;
  /** Turns the block graph's dropout site names into the whole model's (mask keys). */
  readonly sitePrefix: string;
  /** Block-graph parameter input -> flat parameter name. */
  readonly params: ReadonlyMap<string, string>;
  /** Block-graph activation input -> stream it reads. */
  readonly inputs: ReadonlyMap<string, string>;
  /** The stream its output goes to (null: the head, whose outputs are the loss). */
  readonly output: string | null;
  /** Embedding blocks: the data input they look up (fed to the block as `ids`) and its length dimension. */
  readonly ids?: { readonly input: string; readonly length: string };
}

export interface BlockBuildOptions {
  readonly dtype: FloatDType;
  /** Apply the model's dropout with fed masks (training). */
  readonly dropout: boolean;
}

export interface ModelFamily<B extends ModelBatch = ModelBatch> {
  /** HF `model_type`. */
  readonly modelType: 't5' | 'gpt_neox' | 'bart';
  readonly vocabSize: number;
  /** The dropout rate the fed masks use (one rate for every site). */
  readonly dropoutRate: number;
  /** Trainable parameters in HF `named_parameters()` order (PEFT's for adapters): the flat layout. */
  paramSpecs(): ParamSpec[];
  /** Parameters fed but not trained (the base model under LoRA), HF names and order; empty when all train. */
  frozenSpecs(): ParamSpec[];
  /** Every block kind the plan uses (one session per kind). */
  readonly blockKinds: readonly string[];
  buildBlock(kind: string, options: BlockBuildOptions): BlockGraph;
  blockPlan(): BlockInstance[];
  /** The HF module a parameter belongs to: a gradient unit is every parameter of one module. */
  moduleOf(name: string): string;
  /** The whole model's dropout sites in order (a site's index keys its masks in every engine). */
  wholeDropoutSites(dtype: FloatDType): readonly DropoutSite[];
  /** The graph data inputs of a batch (ids, masks, tables); throws EngineError naming a bad id. */
  feeds(batch: B, dtype: FloatDType): Record<string, ort.Tensor>;
  /** Sizes of the symbolic dimensions of dropout sites for `block` in `batch`. */
  maskDims(batch: B, block: BlockInstance): Readonly<Record<string, number>>;
  /** The batch's row count (dropout keys, checks). */
  rows(batch: B): number;
}

export function isCausalBatch(batch: ModelBatch): batch is CausalLmBatch {
  return (batch as CausalLmBatch).kind === 'causal';
}
