import * as ort from 'onnxruntime-node';
import type { FloatDType } from '../../shared/onnx/dtype.js';
import { serializeGraph } from '../../shared/onnx/serialize.js';
import type { Seq2SeqBatch } from '../../shared/models/batch.js';
import type { T5Config } from '../../shared/models/t5-config.js';
import { buildT5Graph, type T5Graph } from '../../shared/models/t5-graph.js';
import { FlatLayout } from '../../shared/weights/flat-layout.js';
import { addRows } from './add-rows.js';
import type { DropoutKey } from './dropout-masks.js';
import { checkFlat, createSession, dropoutMaskFeeds, lossSums, runSession } from './engine-session.js';
import { EngineOptionsSchema, type EngineOptions } from '../../shared/onnx/session-options.js';
import { paramFeeds } from '../../shared/onnx/param-feeds.js';
import { T5Feeds } from '../../shared/models/t5-feeds.js';

// Runs T5 forward+backward and forward-only loss with onnxruntime sessions. All parameters live
// in one flat array in HF order (the layout of t5ParamSpecs); each parameter is fed as a view of it
// (no copy), and each dense gradient output is bound to a view of one flat gradient array, so ORT
// writes gradients where the optimizer and the collectives read them. Lookup tables (embedding,
// position bias) get their gradients as rows, added into their view here (see addRows).

export interface LossSums {
  /** Sum of token cross-entropies (not a mean: the coordinator divides by the global count). */
  readonly lossSum: number;
  readonly tokenCount: number;
}

type Flat = Float32Array | Float64Array;

export class T5Engine {
  private constructor(
    readonly config: T5Config,
    readonly dtype: FloatDType,
    /** Where each parameter (and its gradient) sits in the flat arrays: the train and eval graphs share it. */
    private readonly layout: FlatLayout,
    private readonly train: { readonly session: ort.InferenceSession; readonly built: T5Graph },
    /** The forward-only session, made on first use (a trainer that never evaluates never pays for it). */
    private readonly makeEvaluate: () => Promise<{ readonly session: ort.InferenceSession; readonly built: T5Graph }>,
    private readonly feeds: T5Feeds,
    private readonly gradientOutputs: 'bound' | 'copied',
  ) {}

  private evaluate: Promise<{ readonly session: ort.InferenceSession; readonly built: T5Graph }> | null = null;

  get paramCount(): number {
    return this.layout.totalSize;
  }

  /** Build both graphs and create their sessions. `dropout` applies config.dropoutRate in training. */
  /**
   * `gradientOutputs: 'copied'` lets ORT allocate the gradient outputs and copies them into the
   * flat array in JS: what the default ('bound', ORT writes in place) saves; bench/engine compares.
   */
  static async create(
    config: T5Config,
    options: Partial<EngineOptions> & { dtype?: FloatDType; dropout?: boolean; gradientOutputs?: 'bound' | 'copied' } = {},
  ): Promise<T5Engine> {
    const dtype = options.dtype ?? 'float32';
    const { dtype: _d, dropout: _p, gradientOutputs: _g, ...engineOptions } = options;
    const o = EngineOptionsSchema.parse(engineOptions);
    const trainBuilt = buildT5Graph(config, { dtype, dropout: options.dropout ?? false, gradients: 'rows' });
    const make = (built: T5Graph) => createSession(serializeGraph(built.graph), built.graph.name, o);
    const makeEvaluate = async () => {
      const built = buildT5Graph(config, { dtype, dropout: false, gradients: false });
      return { session: await make(built), built };
    };
    return new T5Engine(config, dtype, FlatLayout.fromSpecs(trainBuilt.params), { session: await make(trainBuilt), built: trainBuilt }, makeEvaluate, new T5Feeds(config, dtype), options.gradientOutputs ?? 'bound');
  }

  /**
   * Loss sums of one micro-batch, and d(loss_sum)/d(params) written into `grad` (overwritten, not
   * accumulated). `dropout` keys the masks when the engine was created with dropout on.
   */
  async forwardBackward(params: Flat, grad: Flat, batch: Seq2SeqBatch, dropout?: DropoutKey): Promise<LossSums> {
    checkFlat(params, this.dtype, this.paramCount, 'params');
    checkFlat(grad, this.dtype, this.paramCount, 'grad');
    const { built, session } = this.train;
    const feeds = { ...this.paramFeeds(params, built), ...this.feeds.feeds(batch), ...this.maskFeeds(batch, built, dropout) };
    const fetches: Record<string, ort.Tensor | null> = { loss_sum: null, token_count: null };
    this.layout.params.forEach((p, i) => {
      const { dense, rows } = built.gradientOutputs[i]!;
      if (dense) fetches[dense] = this.gradientOutputs === 'bound' ? new ort.Tensor(this.dtype, grad.subarray(p.offset, p.offset + p.size), [...p.shape]) : null;
      for (const r of rows) fetches[r.rows] = fetches[r.indices] = null;
    });
    const out = await runSession(session, built.graph.name, feeds, fetches);
    this.layout.params.forEach((p, i) => {
      const view = grad.subarray(p.offset, p.offset + p.size);
      const { dense, rows } = built.gradientOutputs[i]!;
      if (!dense) view.fill(0);
      else if (this.gradientOutputs === 'copied') view.set(out[dense]!.data as Flat);
      for (const r of rows) addRows(view, p.shape[0]!, p.shape[1]!, out[r.indices]!.data as Int32Array | BigInt64Array, out[r.rows]!.data as Flat);
    });
    return lossSums(out);
  }

  /** Loss sums without gradients or dropout (evaluation). */
  async forwardLoss(params: Flat, batch: Seq2SeqBatch): Promise<LossSums> {
    checkFlat(params, this.dtype, this.paramCount, 'params');
    this.evaluate ??= this.makeEvaluate();
    const { built, session } = await this.evaluate;
    const out = await runSession(session, built.graph.name, { ...this.paramFeeds(params, built), ...this.feeds.feeds(batch) }, { loss_sum: null, token_count: null });
    return lossSums(out);
  }

  /** Close onnxruntime's profile files (engines created with `profileFilePrefix`). */
  async endProfiling(): Promise<void> {
    this.train.session.endProfiling();
    if (this.evaluate) (await this.evaluate).session.endProfiling();
  }

  async release(): Promise<void> {
    await this.train.session.release();
    if (this.evaluate) await (await this.evaluate).session.release();
  }

  /** The input tensors of one call (views of `params`, data, masks), built but not run: its JS cost. */
  buildFeeds(params: Flat, batch: Seq2SeqBatch): number {
    return Object.keys({ ...this.paramFeeds(params, this.train.built), ...this.feeds.feeds(batch) }).length;
  }

  private paramFeeds(params: Flat, built: T5Graph): Record<string, ort.Tensor> {
    return paramFeeds(this.layout, params, built.params.map((p) => p.name));
  }

  private maskFeeds(batch: Seq2SeqBatch, built: T5Graph, key: DropoutKey | undefined): Record<string, ort.Tensor> {
    const dims = { batch: batch.batchSize, src_len: batch.srcLen, tgt_len: batch.tgtLen };
    return dropoutMaskFeeds(built.dropoutSites, dims, this.config.dropoutRate, (_site, i) => i, key);
  }
}
