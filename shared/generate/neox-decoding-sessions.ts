import * as ort from 'onnxruntime-node';
import { EngineError } from '../errors.js';
import type { NeoXConfig } from '../models/neox-config.js';
import {
  buildNeoXDecodeGraph, DECODE_LOG_PROBS, NEOX_DECODE_INPUTS, neoxPastKey, neoxPastValue, neoxPresentKey, neoxPresentValue,
} from '../models/neox-decode-graph.js';
import { neoxParamSpecs } from '../models/neox-params.js';
import { EngineOptionsSchema, type EngineOptions } from '../onnx/session-options.js';
import { FlatLayout } from '../weights/flat-layout.js';
import { bindSession, runSession, type BoundSession } from './bound-session.js';

// The onnxruntime session of GPT-NeoX decoding (neox-decode-graph.ts): one graph for the prefill,
// the cached steps and decoding without a cache. Parameters are views of the caller's flat
// Float32Array in neoxParamSpecs order (a LoRA model's adapters already merged into it).

export interface CausalStepRequest {
  /** Rows (items x beams). */
  readonly rows: number;
  /** New positions per row. */
  readonly newLen: number;
  readonly pastLen: number;
  /** [rows, newLen] token ids. */
  readonly tokens: Int32Array;
  /** [rows, pastLen + newLen], 1 for tokens, 0 for (left) padding. */
  readonly attentionMask: Int32Array;
  /** [rows, newLen]. */
  readonly positionIds: Int32Array;
  /** Per layer [rows, heads, pastLen, head]; ignored when pastLen is 0. */
  readonly pastKeys: readonly Float32Array[];
  readonly pastValues: readonly Float32Array[];
  /** Fetch the present keys/values (false for decoding without a cache). */
  readonly present: boolean;
}

export interface CausalStepResult {
  /** [rows, vocab] next-token log-probabilities after the last new position. */
  readonly logProbs: Float32Array;
  /** Per layer [rows, heads, pastLen + newLen, head]; empty when not requested. */
  readonly presentKeys: Float32Array[];
  readonly presentValues: Float32Array[];
}

export class NeoXDecodingSessions {
  private readonly empty = new Float32Array(0);

  private constructor(
    readonly config: NeoXConfig,
    private readonly bound: BoundSession,
  ) {}

  static async create(config: NeoXConfig, flat: Float32Array, options: Partial<EngineOptions> = {}): Promise<NeoXDecodingSessions> {
    const layout = FlatLayout.fromSpecs(neoxParamSpecs(config));
    if (!(flat instanceof Float32Array)) throw new EngineError('generation runs in float32: give the parameters as a Float32Array');
    layout.checkLength(flat);
    const o = EngineOptionsSchema.parse({ intraOpThreads: options.intraOpThreads, executionProvider: options.executionProvider, allowSpinning: options.allowSpinning });
    return new NeoXDecodingSessions(config, await bindSession(buildNeoXDecodeGraph(config, 'float32'), flat, layout, o));
  }

  async step(r: CausalStepRequest): Promise<CausalStepResult> {
    const { numHeads: H, headSize: D, numLayers: L } = this.config;
    const { rows, newLen, pastLen } = r;
    const total = pastLen + newLen;
    if (r.tokens.length !== rows * newLen || r.positionIds.length !== rows * newLen) throw new EngineError(`step: ${r.tokens.length} tokens for [${rows}, ${newLen}]`);
    if (r.attentionMask.length !== rows * total) throw new EngineError(`step: attention mask of ${r.attentionMask.length} for [${rows}, ${total}]`);
    const I = NEOX_DECODE_INPUTS;
    const feeds: Record<string, ort.Tensor> = {
      ...this.bound.paramFeeds,
      [I.inputIds]: new ort.Tensor('int32', r.tokens, [rows, newLen]),
      [I.attentionMask]: new ort.Tensor('int32', r.attentionMask, [rows, total]),
      [I.positionIds]: new ort.Tensor('int32', r.positionIds, [rows, newLen]),
    };
    const pastDims = [rows, H, pastLen, D];
    for (let i = 0; i < L; i++) {
      feeds[neoxPastKey(i)] = new ort.Tensor('float32', pastLen === 0 ? this.empty : r.pastKeys[i]!, pastDims);
      feeds[neoxPastValue(i)] = new ort.Tensor('float32', pastLen === 0 ? this.empty : r.pastValues[i]!, pastDims);
    }
    const fetches = [DECODE_LOG_PROBS];
    if (r.present) for (let i = 0; i < L; i++) fetches.push(neoxPresentKey(i), neoxPresentValue(i));
    const out = await runSession(this.bound.session, feeds, fetches);
    const presentKeys: Float32Array[] = [];
    const presentValues: Float32Array[] = [];
    if (r.present) {
      for (let i = 0; i < L; i++) {
        presentKeys.push(out[neoxPresentKey(i)]!.data as Float32Array);
        presentValues.push(out[neoxPresentValue(i)]!.data as Float32Array);
      }
    }
    return { logProbs: out[DECODE_LOG_PROBS]!.data as Float32Array, presentKeys, presentValues };
  }

  async release(): Promise<void> {
    await this.bound.session.release();
  }
}
