import * as ort from 'onnxruntime-node';
import { BART_PRESETS, parseBartConfig, type BartConfig, type BartConfigInput } from '../../../shared/models/bart-config.js';
import { bartGenerationSpecs } from '../../../shared/models/bart-encoder-graph.js';
import { BartFamily } from '../../../shared/models/bart-family.js';
import { buildBartGraph } from '../../../shared/models/bart-graph.js';
import { BART_LOGITS_BIAS } from '../../../shared/models/bart-params.js';
import { padSeq2SeqBatch } from '../../../shared/models/batch.js';
import { serializeGraph } from '../../../shared/onnx/serialize.js';
import { rngStream } from '../../../shared/random.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { BartReference } from './bart-reference.js';

// Shared by the BART decoding tests: a bart-tiny whose every tensor is random (norm weights and
// biases, positions and final_logits_bias included, so a piece the decoder forgot shows up in the
// logits), the float64 reference over the same weights, and the training graph's logits.

export interface TinyBart {
  readonly config: BartConfig;
  /** bartGenerationSpecs order: the parameters, then final_logits_bias. */
  readonly layout: FlatLayout;
  readonly flat: Float32Array;
}

/** Test-only stream key (RngDomain holds 1 and 2). */
const TEST_DOMAIN = 77;

/**
 * bart-tiny (d_model 32, 2+2 layers, 4 heads, byte vocabulary of 259, eos 1 = decoder start) with
 * weights N(0, 0.2), token and position rows N(0, 1) and N(0, 0.5), norm weights 1 + N(0, 0.2),
 * biases N(0, 0.1), final_logits_bias N(0, 0.5) with `eosBias` added at eos. The tied head's logits
 * spread widely (top-2 gaps of whole units), so argmaxes are clear; eos needs a large bias to win
 * at all: with seed 2 and 16, of BART_SOURCES greedy stops one item after 4 tokens and runs the
 * others to 12 (rows leave the batch at different steps).
 */
export function tinyBart(seed = 2, eosBias = 16, overrides: Partial<BartConfigInput> = {}): TinyBart {
  const config = parseBartConfig({ ...BART_PRESETS['bart-tiny']!, ...overrides });
  const layout = FlatLayout.fromSpecs(bartGenerationSpecs(config));
  const flat = new Float32Array(layout.totalSize);
  layout.params.forEach((p, i) => {
    const v = layout.view(flat, p.name);
    const stream = rngStream(seed, TEST_DOMAIN, i);
    const isNorm = /layer_?norm[^.]*\.weight$/u.test(p.name);
    const std = p.name === BART_LOGITS_BIAS ? 0.5 : p.name.endsWith('.bias') ? 0.1 : isNorm ? 0.2 : p.name.includes('embed_positions') ? 0.5 : p.name === 'model.shared.weight' ? 1 : 0.2;
    stream.fillNormal(v, 0, std);
    if (isNorm) for (let j = 0; j < v.length; j++) v[j]! += 1;
  });
  layout.view(flat, BART_LOGITS_BIAS)[config.eosTokenId]! += eosBias;
  return { config, layout, flat };
}

export function referenceOf(m: TinyBart): BartReference {
  return new BartReference(m.config.raw as unknown as ConstructorParameters<typeof BartReference>[0], (name) => m.layout.view(m.flat, name));
}

/** Three sources of different lengths (padding in the encoder), each ending in eos as training's. */
export const BART_SOURCES: readonly Int32Array[] = [
  Int32Array.of(40, 41, 42, 43, 44, 1),
  Int32Array.of(70, 90, 110, 130, 150, 170, 190, 210, 1),
  Int32Array.of(200, 1),
];

/**
 * The training graph's logits [rows, tgt_len, vocab] (buildBartGraph with logits, no dropout, no
 * gradients), fed by BartFamily as the engine feeds it: decoder inputs = shift_tokens_right(labels).
 */
export async function bartTrainingLogits(m: TinyBart, sources: readonly Int32Array[], labels: readonly number[][]): Promise<{ logits: Float32Array; tgtLen: number }> {
  const built = buildBartGraph(m.config, { dtype: 'float32', dropout: false, gradients: false, logits: true });
  const session = await ort.InferenceSession.create(serializeGraph(built.graph), { intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    const batch = padSeq2SeqBatch(sources.map((s, i) => ({ inputIds: s, labelIds: labels[i]! })), m.config.padTokenId);
    const feeds: Record<string, ort.Tensor> = new BartFamily(m.config, null).feeds(batch, 'float32');
    for (const s of [...built.params, ...built.buffers]) feeds[s.name] = new ort.Tensor('float32', m.layout.view(m.flat, s.name), [...s.shape]);
    const out = await session.run(feeds, ['logits']);
    return { logits: out.logits!.data as Float32Array, tgtLen: batch.tgtLen };
  } finally {
    await session.release();
  }
}
