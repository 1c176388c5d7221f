import * as ort from 'onnxruntime-node';
import { padSeq2SeqBatch } from '../../../shared/models/batch.js';
import { T5_PRESETS } from '../../../shared/models/presets.js';
import { parseT5Config, type T5Config, type T5ConfigInput } from '../../../shared/models/t5-config.js';
import { buildT5Graph } from '../../../shared/models/t5-graph.js';
import { t5ParamSpecs } from '../../../shared/models/t5-params.js';
import { serializeGraph } from '../../../shared/onnx/serialize.js';
import type { DecoderStepper } from '../../../shared/generate/decoder-stepper.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { initT5Flat } from '../../../shared/weights/init.js';
import { T5Feeds } from '../../../shared/models/t5-feeds.js';

// Shared by the generation tests: a t5-tiny with HF-style random weights, lightly perturbed so
// decoding is not degenerate, a stepper that records its outputs, and the training graph's logits.

export interface TinyModel {
  readonly config: T5Config;
  readonly layout: FlatLayout;
  readonly flat: Float32Array;
}

/**
 * t5-tiny (d_model 32, 2+2 layers, byte vocabulary of 259) from initT5Flat(seed), with the eos row
 * of lm_head scaled by `eosScale`: HF's init (lm_head std 1) gives logits of std ~sqrt(32), so eos
 * is rarely the argmax; scaling its row makes some rows stop early (seed 1, scale 3: rows of the
 * standard batch stop after 2 and 5 tokens, one runs to the limit repeating a 5-token loop).
 */
export function tinyModel(seed = 1, eosScale = 3, overrides: Partial<T5ConfigInput> = {}): TinyModel {
  const config = parseT5Config({ ...T5_PRESETS['t5-tiny']!, ...overrides });
  const layout = FlatLayout.fromSpecs(t5ParamSpecs(config));
  const flat = initT5Flat(config, layout, seed);
  const head = layout.view(flat, 'lm_head.weight');
  const eos = config.eosTokenId * config.dModel;
  for (let j = 0; j < config.dModel; j++) head[eos + j] = head[eos + j]! * eosScale;
  return { config, layout, flat };
}

/** Three sources of different lengths (padding in the encoder), each ending in eos as training's. */
export const SOURCES: readonly Int32Array[] = [
  Int32Array.of(40, 41, 42, 43, 44, 1),
  Int32Array.of(70, 90, 110, 130, 150, 170, 190, 210, 1),
  Int32Array.of(200, 1),
];

/** Wraps a stepper; keeps a copy of every step's log-probabilities ([items, beams, vocab] at that step). */
export class RecordingStepper implements DecoderStepper {
  readonly outputs: Float32Array[] = [];
  constructor(private readonly inner: DecoderStepper) {}
  get beams(): number {
    return this.inner.beams;
  }
  get items(): number {
    return this.inner.items;
  }
  async next(tokens: Int32Array): Promise<Float32Array> {
    const l = await this.inner.next(tokens);
    this.outputs.push(l.slice());
    return l;
  }
  select(items: ArrayLike<number>, rows: ArrayLike<number>): void {
    this.inner.select(items, rows);
  }
}

/**
 * The training graph's logits [rows, tgt_len, vocab] (buildT5Graph with logits, no dropout, no
 * gradients), fed as the engine feeds it: decoder input = labels shifted right after the start token.
 */
export async function trainingGraphLogits(m: TinyModel, sources: readonly Int32Array[], labels: readonly number[][]): Promise<{ logits: Float32Array; tgtLen: number }> {
  const built = buildT5Graph(m.config, { dtype: 'float32', dropout: false, gradients: false, logits: true });
  const session = await ort.InferenceSession.create(serializeGraph(built.graph), { intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    const batch = padSeq2SeqBatch(sources.map((s, i) => ({ inputIds: s, labelIds: labels[i]! })), m.config.padTokenId);
    const feeds: Record<string, ort.Tensor> = new T5Feeds(m.config, 'float32').feeds(batch);
    for (const s of built.params) feeds[s.name] = new ort.Tensor('float32', m.layout.view(m.flat, s.name), [...s.shape]);
    const out = await session.run(feeds, ['logits']);
    return { logits: out.logits!.data as Float32Array, tgtLen: batch.tgtLen };
  } finally {
    await session.release();
  }
}

/** log_softmax in float64. */
export function logSoftmax(row: Float32Array): Float64Array {
  const max = Math.max(...row);
  const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
  return Float64Array.from(row, (v) => v - lse);
}

export function argmaxOf(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** Largest minus second largest entry. */
export function topMargin(row: Float32Array): number {
  let a = -Infinity;
  let b = -Infinity;
  for (const x of row) {
    if (x > a) [a, b] = [x, a];
    else if (x > b) b = x;
  }
  return a - b;
}

/** Does any n-gram occur twice in `seq`? */
export function hasRepeatedNgram(seq: readonly number[], n: number): boolean {
  const seen = new Set<string>();
  for (let i = 0; i + n <= seq.length; i++) {
    const key = seq.slice(i, i + n).join(',');
    if (seen.has(key)) return true;
    seen.add(key);
  }
  return false;
}
