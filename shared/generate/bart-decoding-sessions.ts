import * as ort from 'onnxruntime-node';
import { EngineError } from '../errors.js';
import type { BartConfig } from '../models/bart-config.js';
import {
  BART_STEP_INPUTS, BART_STEP_LOG_PROBS, bartPastKeyName, bartPastValueName, bartPresentKeyName, bartPresentValueName, buildBartDecodeStepGraph,
} from '../models/bart-decode-graph.js';
import { BART_ENCODER_INPUTS, bartCrossKeyName, bartCrossValueName, bartGenerationSpecs, buildBartEncoderGraph } from '../models/bart-encoder-graph.js';
import { finfoMin } from '../models/t5-layers.js';
import { EngineOptionsSchema, type EngineOptions } from '../onnx/session-options.js';
import { FlatLayout } from '../weights/flat-layout.js';
import { bindSession, runSession, type BoundSession } from './bound-session.js';
import type { EncodedSources, EncoderDecoderSessions, StepRequest, StepResult } from './seq2seq-sessions.js';

// The onnxruntime sessions of BART generation: the encoder graph (once per batch) and the
// decoder-step graph (one for every beam width: rows are flattened). Parameters are views of the
// caller's flat Float32Array in bartGenerationSpecs order (the parameters, then final_logits_bias;
// a LoRA model's adapters already merged), bound once: nothing is copied. The tensors handed back
// are plain JS arrays the caller owns.

/** The step's position inputs: positions past .. past + step - 1 and the causal mask [step, past + step]. */
export function bartStepTables(pastLen: number, stepLen: number): { readonly positions: Int32Array; readonly causal: Float32Array } {
  const total = pastLen + stepLen;
  const positions = Int32Array.from({ length: stepLen }, (_, q) => pastLen + q);
  const causal = new Float32Array(stepLen * total);
  const min = finfoMin('float32');
  for (let q = 0; q < stepLen; q++) for (let k = pastLen + q + 1; k < total; k++) causal[q * total + k] = min;
  return { positions, causal };
}

export class BartDecodingSessions implements EncoderDecoderSessions {
  private readonly empty = new Float32Array(0);

  private constructor(
    readonly config: BartConfig,
    private readonly encoder: BoundSession,
    private readonly decoder: BoundSession,
  ) {}

  static async create(config: BartConfig, flat: Float32Array, options: Partial<EngineOptions> = {}): Promise<BartDecodingSessions> {
    const layout = FlatLayout.fromSpecs(bartGenerationSpecs(config));
    if (!(flat instanceof Float32Array)) throw new EngineError('generation runs in float32: give the parameters as a Float32Array');
    layout.checkLength(flat);
    const o = EngineOptionsSchema.parse({ intraOpThreads: options.intraOpThreads, executionProvider: options.executionProvider, allowSpinning: options.allowSpinning });
    const encoder = await bindSession(buildBartEncoderGraph(config, 'float32'), flat, layout, o);
    const decoder = await bindSession(buildBartDecodeStepGraph(config, 'float32'), flat, layout, o);
    return new BartDecodingSessions(config, encoder, decoder);
  }

  get kvWidth(): number {
    return this.config.dModel;
  }

  async encode(items: number, srcLen: number, inputIds: Int32Array, attentionMask: Int32Array): Promise<EncodedSources> {
    if (srcLen > this.config.maxPositionEmbeddings) throw new EngineError(`encode: ${srcLen} source tokens, more than max_position_embeddings ${this.config.maxPositionEmbeddings}`);
    const I = BART_ENCODER_INPUTS;
    const out = await runSession(this.encoder.session, {
      ...this.encoder.paramFeeds,
      [I.inputIds]: new ort.Tensor('int32', inputIds, [items, srcLen]),
      [I.attentionMask]: new ort.Tensor('int32', attentionMask, [items, srcLen]),
    });
    const layers = Array.from({ length: this.config.decoderLayers }, (_, i) => i);
    return {
      items,
      srcLen,
      attentionMask,
      crossKeys: layers.map((i) => out[bartCrossKeyName(i)]!.data as Float32Array),
      crossValues: layers.map((i) => out[bartCrossValueName(i)]!.data as Float32Array),
    };
  }

  async step(r: StepRequest): Promise<StepResult> {
    const { decoderHeads: H, decoderLayers: L, dModel } = this.config;
    const hd = dModel / H;
    const { items, srcLen } = r.sources;
    const { beams, stepLen, pastLen } = r;
    const rows = items * beams;
    if (r.tokens.length !== rows * stepLen) throw new EngineError(`step: ${r.tokens.length} tokens for [${items}, ${beams}, ${stepLen}]`);
    // Learned positions end at max_position_embeddings: a longer decode would read past the table.
    if (pastLen + stepLen > this.config.maxPositionEmbeddings) throw new EngineError(`step: decoder position ${pastLen + stepLen - 1} is beyond max_position_embeddings ${this.config.maxPositionEmbeddings}`);
    const S = BART_STEP_INPUTS;
    const { positions, causal } = bartStepTables(pastLen, stepLen);
    const feeds: Record<string, ort.Tensor> = {
      ...this.decoder.paramFeeds,
      [S.decoderInputIds]: new ort.Tensor('int32', r.tokens, [rows, stepLen]),
      [S.attentionMask]: new ort.Tensor('int32', r.sources.attentionMask, [items, srcLen]),
      [S.positions]: new ort.Tensor('int32', positions, [stepLen]),
      [S.causalMask]: new ort.Tensor('float32', causal, [stepLen, pastLen + stepLen]),
    };
    // [items, beams, heads, past, hd] is [rows, heads, past, hd] in memory.
    const pastDims = [rows, H, pastLen, hd];
    for (let i = 0; i < L; i++) {
      feeds[bartCrossKeyName(i)] = new ort.Tensor('float32', r.sources.crossKeys[i]!, [items, H, srcLen, hd]);
      feeds[bartCrossValueName(i)] = new ort.Tensor('float32', r.sources.crossValues[i]!, [items, H, srcLen, hd]);
      feeds[bartPastKeyName(i)] = new ort.Tensor('float32', pastLen === 0 ? this.empty : r.pastKeys[i]!, pastDims);
      feeds[bartPastValueName(i)] = new ort.Tensor('float32', pastLen === 0 ? this.empty : r.pastValues[i]!, pastDims);
    }
    const fetches = [BART_STEP_LOG_PROBS];
    if (r.present) for (let i = 0; i < L; i++) fetches.push(bartPresentKeyName(i), bartPresentValueName(i));
    const out = await runSession(this.decoder.session, feeds, fetches);
    const presentKeys: Float32Array[] = [];
    const presentValues: Float32Array[] = [];
    if (r.present) {
      for (let i = 0; i < L; i++) {
        presentKeys.push(out[bartPresentKeyName(i)]!.data as Float32Array);
        presentValues.push(out[bartPresentValueName(i)]!.data as Float32Array);
      }
    }
    return { logProbs: out[BART_STEP_LOG_PROBS]!.data as Float32Array, presentKeys, presentValues };
  }

  async release(): Promise<void> {
    await this.encoder.session.release();
    await this.decoder.session.release();
  }
}
