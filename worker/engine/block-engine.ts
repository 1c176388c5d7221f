import * as ort from 'onnxruntime-node';
import { blockModels, type BlockMode, type BlockModels } from '../../shared/autodiff/block-models.js';
import { EngineError } from '../../shared/errors.js';
import type { FloatDType } from '../../shared/onnx/dtype.js';
import type { BlockInstance, ModelBatch, ModelFamily } from '../../shared/models/model-family.js';
import type { DropoutSite } from '../../shared/models/t5-layers.js';
import { EngineOptionsSchema, type EngineOptions } from '../../shared/onnx/session-options.js';
import { FlatLayout, type FlatParam } from '../../shared/weights/flat-layout.js';
import { addRows } from './add-rows.js';
import type { DropoutKey } from './dropout-masks.js';
import { checkFlat, createSession, dropoutMaskFeeds, lossSums, runSession } from './engine-session.js';
import { engineTraces, gradientUnits, type GradientUnit } from './block-plan.js';
import type { LossSums } from './t5-engine.js';
import { paramReader, type FrozenSource, type ParamReader, type UnitFetcher } from './unit-params.js';

// [Note: block engine] A model run block by block (its family's plan, block-plan.ts, [Note: block
// models], [Note: model family]): the forward
// keeps only each block's inputs (with activation checkpointing) or its saved activations; the
// backward goes from the head down, seeding each block with the gradient of its output, and hands
// each gradient unit to a sink as soon as its last block is done (ZeRO-2 reduces it right away, so
// no rank ever holds a whole-model gradient). Blocks of one kind share one session. The
// whole-model graph computes the same function in one graph: the test oracle.
//
// Values used by several blocks have their gradients summed here (T5: the encoder output, every
// decoder layer's cross-attention; a stack's attention bias; the shared embedding, both lookups
// and a tied head). Dropout masks are keyed by the whole model's site index, so both engines draw
// the same masks for the same (seed, step, sample).
//
// Frozen parameters (the base model under LoRA) are graph inputs that are not differentiated, so
// no gradient of them is computed, reduced or stored. They are fed from a buffer the engine is
// given at creation and keeps, or, when the base is partitioned (ZeRO stage 3, created with
// 'partitioned'), from units gathered along the same traces as the trainable ones: `frozenUnits`
// group the base by HF module as the gradient units group the trainable parameters, and the
// traces number them after the trainable units.

type Flat = Float32Array | Float64Array;

/** Receives the gradient of the flat range [lo, hi) (length hi - lo) and owns it from then on. */
export type GradientSink = (lo: number, hi: number, grad: Flat) => void | Promise<void>;

export interface BlockEngineOptions extends EngineOptions {
  readonly dtype: FloatDType;
  /** Apply config.dropoutRate (training). */
  readonly dropout: boolean;
  /** HF `gradient_checkpointing`: recompute each block's forward in its backward. */
  readonly checkpointing: boolean;
}

interface KindSessions {
  readonly models: BlockModels;
  readonly forward: ort.InferenceSession | null;
  /** Null: nothing to differentiate (the backward pass skips the block). */
  readonly backward: ort.InferenceSession | null;
  readonly sites: readonly DropoutSite[];
}

export class BlockEngine {
  private evaluate: Promise<Map<string, { session: ort.InferenceSession }>> | null = null;
  private readonly sessions = new Set<ort.InferenceSession>();
  /** Parameters exactly one block uses (their gradient is complete when that block's backward ends). */
  private readonly usedOnce: ReadonlySet<string>;
  /**
   * The units each position of a training pass needs: the forward of every block with a forward
   * session (all but the head, whose forward runs inside its backward), then every block's
   * backward from the head down. Stage 3 gathers along it ([Note: gather schedule]).
   */
  readonly trainTrace: readonly (readonly number[])[];
  /** The same for an evaluation pass: every block's forward. */
  readonly evalTrace: readonly (readonly number[])[];
  /** The frozen base's units when it is partitioned (trace indices units.length + j); else none. */
  readonly frozenUnits: readonly GradientUnit[];

  private constructor(
    readonly family: ModelFamily,
    readonly options: BlockEngineOptions,
    private readonly layout: FlatLayout,
    /** The frozen base: its layout, and its values held here (null: partitioned, read from the passes' units). */
    private readonly frozen: { readonly layout: FlatLayout; readonly values: Flat | null } | null,
    private readonly plan: readonly BlockInstance[],
    /** Gradient units in backward order. */
    readonly units: readonly GradientUnit[],
    private readonly train: Map<string, KindSessions>,
    /** Whole-model dropout site input -> site index (the mask key). */
    private readonly siteIndex: ReadonlyMap<string, number>,
  ) {
    const users = new Map<string, number>();
    for (const b of plan) for (const name of b.params.values()) users.set(name, (users.get(name) ?? 0) + 1);
    this.usedOnce = new Set([...users].filter(([, n]) => n === 1).map(([name]) => name));
    // The trace's forwards are the blocks with a forward session.
    if (plan.some((b) => (b.output !== null) !== (train.get(b.kind)!.forward !== null))) throw new EngineError('a block without an output has a forward session, or the reverse');
    const runsBackward = (k: number) => train.get(plan[k]!.kind)!.backward !== null;
    this.frozenUnits = frozen && !frozen.values ? gradientUnits(plan, frozen.layout, (n) => family.moduleOf(n)) : [];
    const partitioned = this.frozenUnits.length > 0 ? { units: this.frozenUnits, layout: frozen!.layout } : null;
    const traces = engineTraces(plan, { units, layout }, partitioned, runsBackward);
    this.trainTrace = traces.train;
    this.evalTrace = traces.eval;
  }

  /**
   * `frozen`: the values of the family's frozen parameters (its frozenSpecs layout), kept and fed
   * as they are, or 'partitioned' (ZeRO stage 3: they arrive as units of each pass, `frozenUnits`);
   * required when the family has any.
   */
  static async create(family: ModelFamily, options: Partial<BlockEngineOptions> = {}, frozen: Flat | 'partitioned' | null = null): Promise<BlockEngine> {
    const { dtype = 'float32', dropout = false, checkpointing = false, ...rest } = options;
    const o: BlockEngineOptions = { ...EngineOptionsSchema.parse(rest), dtype, dropout, checkpointing };
    const layout = FlatLayout.fromSpecs(family.paramSpecs());
    const frozenSpecs = family.frozenSpecs();
    let frozenParams: { layout: FlatLayout; values: Flat | null } | null = null;
    if (frozenSpecs.length > 0) {
      const frozenLayout = FlatLayout.fromSpecs(frozenSpecs);
      if (!frozen) throw new EngineError(`the model has ${frozenLayout.totalSize} frozen parameters and the engine was given none`);
      if (frozen === 'partitioned') {
        if (dtype !== 'float32') throw new EngineError('partitioned (ZeRO-3) parameters are float32');
      } else checkFlat(frozen, dtype, frozenLayout.totalSize, 'frozen params');
      frozenParams = { layout: frozenLayout, values: frozen === 'partitioned' ? null : frozen };
    } else if (frozen === 'partitioned' || (frozen && frozen.length > 0)) throw new EngineError('frozen parameters given to a model without any');
    const plan = family.blockPlan();
    const mode: BlockMode = checkpointing ? 'recompute' : 'saved';
    const train = new Map<string, KindSessions>();
    const made: ort.InferenceSession[] = [];
    for (const kind of family.blockKinds) {
      const def = family.buildBlock(kind, { dtype, dropout });
      const models = blockModels(def, mode);
      const forward = models.forward ? await createSession(models.forward, `${kind} forward`, o) : null;
      const backward = models.backward ? await createSession(models.backward, `${kind} backward`, o) : null;
      made.push(...(forward ? [forward] : []), ...(backward ? [backward] : []));
      train.set(kind, { models, forward, backward, sites: def.dropoutSites });
    }
    const siteIndex = new Map<string, number>();
    if (dropout) family.wholeDropoutSites(dtype).forEach((s, i) => siteIndex.set(s.input, i));
    const engine = new BlockEngine(family, o, layout, frozenParams, plan, gradientUnits(plan, layout, (n) => family.moduleOf(n)), train, siteIndex);
    for (const s of made) engine.sessions.add(s);
    return engine;
  }

  get paramCount(): number {
    return this.layout.totalSize;
  }

  get dtype(): FloatDType {
    return this.options.dtype;
  }

  /**
   * Loss sums of one micro-batch; the gradient of the loss sum goes to `sink` unit by unit, in the
   * order of `units` (from the end of the flat buffer to its start), each exactly once.
   */
  async forwardBackward(source: Flat | UnitFetcher, batch: ModelBatch, dropout: DropoutKey | undefined, sink: GradientSink): Promise<LossSums> {
    const params = this.reader(source);
    let position = 0;
    const data = this.family.feeds(batch, this.dtype);
    const stash: (Record<string, ort.Tensor> | null)[] = [];

    // forward: each block's inputs (and saved activations) kept for its backward
    const streams = new Map<string, ort.Tensor>();
    for (const [k, block] of this.plan.entries()) {
      const s = this.train.get(block.kind)!;
      const feeds: Record<string, ort.Tensor> = { ...this.activationFeeds(block, data, streams), ...this.maskFeeds(block, s.sites, batch, dropout) };
      stash[k] = feeds;
      if (!s.forward) continue; // the head: forward and backward in one run
      await params.at(position);
      const out = await this.run(s.forward, block, { ...data, ...feeds, ...this.paramFeeds(block, params) }, ['out', ...s.models.saved]);
      params.after(position++);
      for (const name of s.models.saved) feeds[name] = out[name]!;
      streams.set(block.output!, out.out!);
    }

    // backward, from the head down; a stream's gradient is summed over the blocks that read it
    let loss: LossSums | null = null;
    const streamGrads = new Map<string, Flat>();
    const accumulated = new Map<string, Flat>();
    let nextUnit = 0;
    for (let k = this.plan.length - 1; k >= 0; k--) {
      const block = this.plan[k]!;
      const s = this.train.get(block.kind)!;
      const unit = this.units[nextUnit]?.block === k ? this.units[nextUnit]! : null;
      if (!s.backward) {
        // Nothing to differentiate (a frozen embedding): its output's gradient goes nowhere.
        if (unit) throw new EngineError(`block ${block.label} completes a gradient unit but has no backward`);
        streamGrads.delete(block.output!);
        stash[k] = null;
        await params.at(position); // its trace position (no trainable units) keeps stage 3's schedule in step
        params.after(position++);
        continue;
      }
      const unitGrad = unit ? this.newFlat(unit.hi - unit.lo) : null;
      const seeds: Record<string, ort.Tensor> = {};
      if (block.output) {
        const seed = streamGrads.get(block.output);
        if (!seed) throw new EngineError(`block ${block.label}: no gradient reached its output ${block.output}`);
        streamGrads.delete(block.output);
        seeds[s.models.seeds[0]!.seed] = new ort.Tensor(this.dtype, seed, streams.get(block.output)!.dims);
      }
      // Dense gradients of parameters only this block uses are written by ORT into the unit in place.
      const fetches: Record<string, ort.Tensor | null> = {};
      for (const g of s.models.activationGradients) fetches[g.gradient] = null;
      if (block.kind === 'head') fetches.loss_sum = fetches.token_count = null;
      const inPlace = new Set<string>();
      for (const g of s.models.paramGradients) {
        const p = this.layout.get(block.params.get(g.param)!);
        if (g.dense && unit && this.writesInPlace(p, g, unit)) {
          inPlace.add(g.param);
          fetches[g.dense] = new ort.Tensor(this.dtype, unitGrad!.subarray(p.offset - unit.lo, p.offset - unit.lo + p.size), [...p.shape]);
        } else if (g.dense) fetches[g.dense] = null;
        for (const r of g.rows) fetches[r.rows] = fetches[r.indices] = null;
      }
      await params.at(position);
      const out = await this.run(s.backward, block, { ...data, ...stash[k]!, ...seeds, ...this.paramFeeds(block, params) }, fetches);
      params.after(position++);
      stash[k] = null;

      for (const g of s.models.paramGradients) {
        if (inPlace.has(g.param)) continue;
        const p = this.layout.get(block.params.get(g.param)!);
        let target = accumulated.get(p.name);
        if (g.dense) {
          const dense = out[g.dense]!.data as Flat;
          if (!target) accumulated.set(p.name, (target = dense));
          else addInto(target, dense);
        }
        for (const r of g.rows) {
          if (!target) accumulated.set(p.name, (target = this.newFlat(p.size)));
          addRows(target, p.shape[0]!, p.shape[1]!, out[r.indices]!.data as Int32Array | BigInt64Array, out[r.rows]!.data as Flat);
        }
      }
      for (const g of s.models.activationGradients) {
        const stream = block.inputs.get(g.activation)!;
        const grad = out[g.gradient]!.data as Flat;
        const sum = streamGrads.get(stream);
        if (!sum) streamGrads.set(stream, grad);
        else addInto(sum, grad);
      }
      if (block.kind === 'head') loss = lossSums(out);

      if (unit) {
        nextUnit++;
        await sink(unit.lo, unit.hi, this.completeUnit(unit, unitGrad!, accumulated));
      }
    }
    if (!loss) throw new EngineError('the head block did not run');
    return loss;
  }

  /** Loss sums by block forward, without gradients or dropout (evaluation). */
  async forwardLoss(source: Flat | UnitFetcher, batch: ModelBatch): Promise<LossSums> {
    const params = this.reader(source);
    this.evaluate ??= this.makeEvaluate();
    const sessions = await this.evaluate;
    const data = this.family.feeds(batch, this.dtype);
    const streams = new Map<string, ort.Tensor>();
    for (const [position, block] of this.plan.entries()) {
      await params.at(position);
      const feeds: Record<string, ort.Tensor> = { ...data, ...this.activationFeeds(block, data, streams), ...this.paramFeeds(block, params) };
      const session = sessions.get(block.kind)!.session;
      if (block.kind === 'head') {
        const out = await this.run(session, block, feeds, ['loss_sum', 'token_count']);
        params.after(position);
        return lossSums(out);
      }
      streams.set(block.output!, (await this.run(session, block, feeds, ['out'])).out!);
      params.after(position);
    }
    throw new EngineError('the plan has no head block');
  }

  /**
   * Free the evaluation sessions (their arenas: a forward at the eval batch size), made again on
   * the next forwardLoss. Evaluation runs once an epoch; its memory need not stay beside training's.
   */
  async releaseEvaluation(): Promise<void> {
    const evaluate = this.evaluate;
    this.evaluate = null;
    if (!evaluate) return;
    for (const { session } of (await evaluate).values()) {
      this.sessions.delete(session);
      await session.release();
    }
  }

  async endProfiling(): Promise<void> {
    for (const s of this.sessions) s.endProfiling();
  }

  async release(): Promise<void> {
    for (const s of this.sessions) await s.release();
    this.sessions.clear();
  }

  private async makeEvaluate(): Promise<Map<string, { session: ort.InferenceSession }>> {
    const out = new Map<string, { session: ort.InferenceSession }>();
    for (const kind of this.family.blockKinds) {
      const models = blockModels(this.family.buildBlock(kind, { dtype: this.dtype, dropout: false }), 'recompute');
      const session = await createSession(models.forward ?? models.lossOnly!, `${kind} evaluation`, this.options);
      this.sessions.add(session);
      out.set(kind, { session });
    }
    return out;
  }

  /** A parameter only this unit's block uses, with a dense gradient only: ORT writes it in place. */
  private writesInPlace(p: FlatParam, g: BlockModels['paramGradients'][number], unit: GradientUnit): boolean {
    return g.rows.length === 0 && this.usedOnce.has(p.name) && unit.params.includes(p.name);
  }

  /** The unit's gradient: in-place parts already written, summed ones copied in (or handed over whole). */
  private completeUnit(unit: GradientUnit, grad: Flat, accumulated: Map<string, Flat>): Flat {
    if (unit.params.length === 1) {
      const whole = accumulated.get(unit.params[0]!);
      if (whole && whole.length === grad.length) {
        accumulated.delete(unit.params[0]!);
        return whole;
      }
    }
    for (const name of unit.params) {
      const acc = accumulated.get(name);
      if (!acc) continue;
      const p = this.layout.get(name);
      grad.set(acc, p.offset - unit.lo);
      accumulated.delete(name);
    }
    return grad;
  }

  private activationFeeds(block: BlockInstance, data: Record<string, ort.Tensor>, streams: ReadonlyMap<string, ort.Tensor>): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    if (block.ids) feeds.ids = data[block.ids.input]!;
    for (const [input, stream] of block.inputs) {
      const t = streams.get(stream);
      if (!t) throw new EngineError(`block ${block.label}: stream ${stream} has no value yet`);
      feeds[input] = t;
    }
    return feeds;
  }

  /** The block's parameters as tensors viewing where the reader (or the frozen buffer) holds them (no copy). */
  private paramFeeds(block: BlockInstance, params: ParamReader): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [input, name] of block.params) {
      if (this.layout.has(name)) {
        const p = this.layout.get(name);
        feeds[input] = new ort.Tensor(this.dtype, params.view(p.offset, p.size), [...p.shape]);
      } else {
        if (!this.frozen) throw new EngineError(`block ${block.label}: parameter ${name} is in no layout`);
        const p = this.frozen.layout.get(name);
        feeds[input] = new ort.Tensor(this.dtype, params.frozenView(p.offset, p.size), [...p.shape]);
      }
    }
    return feeds;
  }

  private reader(source: Flat | UnitFetcher): ParamReader {
    if (ArrayBuffer.isView(source)) checkFlat(source, this.dtype, this.paramCount, 'params');
    else if (this.dtype !== 'float32') throw new EngineError('partitioned (ZeRO-3) parameters are float32');
    const frozen: FrozenSource = !this.frozen ? null : this.frozen.values ? { values: this.frozen.values } : { units: this.frozenUnits };
    return paramReader(source, this.units, frozen);
  }

  private maskFeeds(block: BlockInstance, sites: readonly DropoutSite[], batch: ModelBatch, key: DropoutKey | undefined): Record<string, ort.Tensor> {
    if (sites.length === 0) return {};
    return dropoutMaskFeeds(sites, this.family.maskDims(batch, block), this.family.dropoutRate, (site) => this.wholeSiteIndex(block, site), key);
  }

  /** The whole model's index of a block's dropout site (the mask key both engines use). */
  private wholeSiteIndex(block: BlockInstance, site: DropoutSite): number {
    const whole = `dropout.${block.sitePrefix}${site.input.slice('dropout.'.length)}`;
    const index = this.siteIndex.get(whole);
    if (index === undefined) throw new EngineError(`block ${block.label}: dropout site ${whole} is not in the whole model`);
    return index;
  }

  private newFlat(n: number): Flat {
    return this.dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
  }

  private async run(session: ort.InferenceSession, block: BlockInstance, all: Record<string, ort.Tensor>, fetches: string[] | Record<string, ort.Tensor | null>) {
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of session.inputNames) {
      const t = all[name];
      if (!t) throw new EngineError(`block ${block.label}: no value for input ${name}`);
      feeds[name] = t;
    }
    const wanted = Array.isArray(fetches) ? Object.fromEntries(fetches.map((f) => [f, null])) : fetches;
    return runSession(session, `block ${block.label}`, feeds, wanted);
  }
}

function addInto(target: Flat, add: Flat): void {
  for (let i = 0; i < target.length; i++) target[i]! += add[i]!;
}

