import * as ort from 'onnxruntime-node';
import { EngineError } from '../errors.js';
import type { T5Config } from '../models/t5-config.js';
import {
  buildT5DecoderStepGraph, crossKeyName, crossValueName, pastKeyName, pastValueName, presentKeyName, presentValueName, STEP_LOG_PROBS, T5_STEP_INPUTS,
} from '../models/t5-decoder-step-graph.js';
import { buildT5EncoderGraph, T5_ENCODER_INPUTS } from '../models/t5-encoder-graph.js';
import { t5ParamSpecs } from '../models/t5-params.js';
import { FlatLayout } from '../weights/flat-layout.js';
import { EngineOptionsSchema, type EngineOptions } from '../onnx/session-options.js';
import { bindSession, runSession, type BoundSession } from './bound-session.js';
import type { EncodedSources, EncoderDecoderSessions, StepRequest, StepResult } from './seq2seq-sessions.js';
import { StepTables } from './step-tables.js';

// The onnxruntime sessions of generation: the encoder graph (once per batch) and one decoder-step
// graph per beam count (made on first use). Parameters are fed as views of the caller's flat
// Float32Array, built once per session: nothing is copied, and weights updated in place (a trainer's
// buffer) are what the next call sees. The tensors handed back are plain JS arrays the caller owns.

export class T5DecodingSessions implements EncoderDecoderSessions {
  /** Step sessions by beams and projection form (see linearWeightsFirst). */
  private readonly steps = new Map<string, Promise<BoundSession>>();
  private readonly tables: StepTables;
  private readonly empty = new Float32Array(0);

  private constructor(
    readonly config: T5Config,
    private readonly flat: Float32Array,
    private readonly layout: FlatLayout,
    private readonly options: EngineOptions,
    private readonly encoder: BoundSession,
  ) {
    this.tables = new StepTables(config);
  }

  get kvWidth(): number {
    return this.config.numHeads * this.config.dKv;
  }

  static async create(config: T5Config, flat: Float32Array, options: Partial<EngineOptions> = {}): Promise<T5DecodingSessions> {
    const layout = FlatLayout.fromSpecs(t5ParamSpecs(config));
    if (!(flat instanceof Float32Array)) throw new EngineError('generation runs in float32: give the parameters as a Float32Array');
    layout.checkLength(flat);
    const o = EngineOptionsSchema.parse({ intraOpThreads: options.intraOpThreads, executionProvider: options.executionProvider, allowSpinning: options.allowSpinning });
    const encoder = await bindSession(buildT5EncoderGraph(config, 'float32'), flat, layout, o);
    return new T5DecodingSessions(config, flat, layout, o, encoder);
  }

  /** Encode a padded batch: ids and mask [items, srcLen]. */
  async encode(items: number, srcLen: number, inputIds: Int32Array, attentionMask: Int32Array): Promise<EncodedSources> {
    const I = T5_ENCODER_INPUTS;
    const feeds = {
      ...this.encoder.paramFeeds,
      [I.inputIds]: new ort.Tensor('int32', inputIds, [items, srcLen]),
      [I.attentionMask]: new ort.Tensor('int32', attentionMask, [items, srcLen]),
      [I.positionBuckets]: new ort.Tensor('int32', this.tables.encoderBuckets(srcLen), [srcLen, srcLen]),
    };
    const out = await runSession(this.encoder.session, feeds);
    const layers = Array.from({ length: this.config.numDecoderLayers }, (_, i) => i);
    return {
      items,
      srcLen,
      attentionMask,
      crossKeys: layers.map((i) => out[crossKeyName(i)]!.data as Float32Array),
      crossValues: layers.map((i) => out[crossValueName(i)]!.data as Float32Array),
    };
  }

  async step(r: StepRequest): Promise<StepResult> {
    const { numHeads: H, dKv: D, numDecoderLayers: L } = this.config;
    const { items, srcLen } = r.sources;
    const { beams, stepLen, pastLen } = r;
    if (r.tokens.length !== items * beams * stepLen) throw new EngineError(`step: ${r.tokens.length} tokens for [${items}, ${beams}, ${stepLen}]`);
    // One row: ORT's GEMV path; more: weights streamed once as the left operand.
    const bound = await this.stepSession(beams, items * beams * stepLen > 1);
    const S = T5_STEP_INPUTS;
    const { buckets, causal } = this.tables.decoderStep(pastLen, stepLen);
    const total = pastLen + stepLen;
    const feeds: Record<string, ort.Tensor> = {
      ...bound.paramFeeds,
      [S.decoderInputIds]: new ort.Tensor('int32', r.tokens, [items, beams, stepLen]),
      [S.attentionMask]: new ort.Tensor('int32', r.sources.attentionMask, [items, srcLen]),
      [S.positionBuckets]: new ort.Tensor('int32', buckets, [stepLen, total]),
      [S.causalMask]: new ort.Tensor('float32', causal, [stepLen, total]),
    };
    const pastDims = [items, beams, H, pastLen, D];
    for (let i = 0; i < L; i++) {
      feeds[crossKeyName(i)] = new ort.Tensor('float32', r.sources.crossKeys[i]!, [items, H, srcLen, D]);
      feeds[crossValueName(i)] = new ort.Tensor('float32', r.sources.crossValues[i]!, [items, H, srcLen, D]);
      feeds[pastKeyName(i)] = new ort.Tensor('float32', pastLen === 0 ? this.empty : r.pastKeys[i]!, pastDims);
      feeds[pastValueName(i)] = new ort.Tensor('float32', pastLen === 0 ? this.empty : r.pastValues[i]!, pastDims);
    }
    const fetches = [STEP_LOG_PROBS];
    if (r.present) for (let i = 0; i < L; i++) fetches.push(presentKeyName(i), presentValueName(i));
    const out = await runSession(bound.session, feeds, fetches);
    const presentKeys: Float32Array[] = [];
    const presentValues: Float32Array[] = [];
    if (r.present) {
      for (let i = 0; i < L; i++) {
        presentKeys.push(out[presentKeyName(i)]!.data as Float32Array);
        presentValues.push(out[presentValueName(i)]!.data as Float32Array);
      }
    }
    return { logProbs: out[STEP_LOG_PROBS]!.data as Float32Array, presentKeys, presentValues };
  }

  async release(): Promise<void> {
    const sessions = [this.encoder, ...(await Promise.all(this.steps.values()))];
    this.steps.clear();
    for (const s of sessions) await s.session.release();
  }

  private stepSession(beams: number, weightsFirst: boolean): Promise<BoundSession> {
    const key = `${beams}:${weightsFirst}`;
    let s = this.steps.get(key);
    if (!s) {
      s = bindSession(buildT5DecoderStepGraph(this.config, { dtype: 'float32', beams, weightsFirst }), this.flat, this.layout, this.options);
      this.steps.set(key, s);
    }
    return s;
  }
}
