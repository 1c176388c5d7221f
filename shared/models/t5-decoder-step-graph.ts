import type { FloatDType } from '../onnx/dtype.js';
import { Graph, type Value } from '../onnx/graph.js';
import { add, concat, gather, logSoftmax, matmul, mul, relu, reshape, scalarLike, shapeOf, softmax, transpose } from '../onnx/ops.js';
import { dimProduct } from '../onnx/shape.js';
import type { T5Config } from './t5-config.js';
import { geluNew, linear, rmsNorm, type FeedForwardWeights } from './t5-layers.js';
import {
  attentionWeights, crossKeyName, crossValueName, declareT5Params, feedForwardWeights, isCrossKeyValueWeight, keyMaskBias, relativePositionBias, type T5PartGraph,
} from './t5-encoder-graph.js';

// One decoder step of T5ForConditionalGeneration with a key/value cache (HF's `past_key_values`).
//
// Rows are laid out [batch, beams] (item-major, as HF expands inputs for beam search), `beams` fixed
// when the graph is built. The beams of one item share that item's cross-attention keys/values:
// they come in once per item, [batch, heads, src_len, d_kv], and the beams' queries are stacked
// against them, so nothing of source length is ever expanded or reordered per beam.
//
// Self-attention keys/values of earlier positions come in as past_key.i / past_value.i
// [batch, beams, heads, past_len, d_kv] (past_len may be 0), the new `step_len` positions' keys and
// values are appended, and the whole is returned as present_key.i / present_value.i for the next
// step. With past_len = 0 and the whole prefix as new positions the same graph is the decoder
// without a cache (HF's use_cache=False).
//
// The relative position bias and the causal mask of the new queries against all keys
// ([step_len, past_len + step_len]) are fed in, computed in JS (see shared/generate/step-tables.ts):
// buckets for query position past_len + q against keys 0..past_len + step_len - 1, unidirectional.
// The output is the log-softmax of the last new position's logits, [batch, beams, vocab]: what beam
// search scores with (HF: log_softmax in float32), and greedy's argmax is the same as on the logits.
// A step is bound by reading the weights; see linearWeightsFirst for the two forms of nn.Linear.

export const STEP_BATCH = 'batch';
export const STEP_LEN = 'step_len';
export const PAST_LEN = 'past_len';
export const STEP_SRC_LEN = 'src_len';
export const STEP_LOG_PROBS = 'log_probs';
/** Keys seen by the new queries: the past and the new positions. */
export const TOTAL_LEN = `${PAST_LEN}+${STEP_LEN}`;

export const T5_STEP_INPUTS = {
  decoderInputIds: 'decoder_input_ids',
  attentionMask: 'attention_mask',
  positionBuckets: 'self_position_buckets',
  causalMask: 'self_causal_mask',
} as const;

export const pastKeyName = (layer: number): string => `past_key.${layer}`;
export const pastValueName = (layer: number): string => `past_value.${layer}`;
export const presentKeyName = (layer: number): string => `present_key.${layer}`;
export const presentValueName = (layer: number): string => `present_value.${layer}`;
export { crossKeyName, crossValueName } from './t5-encoder-graph.js';

export interface T5DecoderStepOptions {
  readonly dtype: FloatDType;
  /** Rows per item (num_beams; 1 for greedy). */
  readonly beams: number;
  /** Linear layers as (W @ x^T)^T (see linearWeightsFirst): for steps of 2+ rows; false for one. */
  readonly weightsFirst: boolean;
}

/**
 * x @ W^T (nn.Linear, W [out, in]) computed as (W @ x^T)^T over the rows flattened to 2-D. With
 * the few rows of a decoder step the product is bound by reading the weights, and ORT's x @ W^T
 * for 2+ rows (a GEMM with a transposed B, which presumably packs W on every call) is slower than
 * W @ x^T, where W is the plain left operand and only the small x^T is transposed. For a single row
 * x @ W^T takes ORT's GEMV path and is the faster. Measured on a whole pko-t5-base step (2 threads, variants
 * interleaved, best of 6-10 under load 4): 5 beams 114 ms vs 148; 8 greedy rows 151 vs 200;
 * 2 rows 99 vs 125; one row 110 vs 73. Hence the `weightsFirst` option, chosen per call by rows.
 */
export function linearWeightsFirst(x: Value, w: Value): Value {
  const [out, inDim] = w.shape as [number, number];
  const lead = x.shape.slice(0, -1);
  const rows = reshape(x, [dimProduct(lead), inDim]);
  const y = transpose(matmul(w, transpose(rows, [1, 0])), [1, 0]); // [rows, out]
  const g = x.graph;
  const leadShape = gather(shapeOf(x), g.ints(lead.map((_, i) => i)), 0);
  const target = concat([leadShape, g.ints([out])], 0);
  return g.emit('Reshape', [y, target], {}, [{ dtype: y.dtype, shape: [...lead, out] }])[0]!;
}

type Projection = (x: Value, w: Value) => Value;

/** T5DenseActDense / T5DenseGatedActDense, as t5-layers' feedForward without dropout, with `project` for nn.Linear. */
function feedForwardWith(project: Projection, x: Value, w: FeedForwardWeights, activation: 'relu' | 'gelu_new'): Value {
  let h = activation === 'relu' ? relu(project(x, w.wi0)) : geluNew(project(x, w.wi0));
  if (w.wi1) h = mul(h, project(x, w.wi1));
  return project(h, w.wo);
}

export function buildT5DecoderStepGraph(config: T5Config, options: T5DecoderStepOptions): T5PartGraph {
  const { dtype, beams } = options;
  if (!Number.isInteger(beams) || beams < 1) throw new RangeError(`beams must be a positive integer, got ${beams}`);
  const project: Projection = options.weightsFirst ? linearWeightsFirst : linear;
  const g = new Graph(`t5_decoder_step_beams${beams}${options.weightsFirst ? '_weights_first' : ''}`);
  const { P, params } = declareT5Params(g, config, dtype, (n) => n === 'shared.weight' || n === 'lm_head.weight' || (n.startsWith('decoder.') && !isCrossKeyValueWeight(n)));
  const { numHeads: H, dKv: D, layerNormEpsilon: eps } = config;
  const I = T5_STEP_INPUTS;
  const [B, S, PL, SRC, T] = [STEP_BATCH, STEP_LEN, PAST_LEN, STEP_SRC_LEN, TOTAL_LEN];

  const ids = g.input(I.decoderInputIds, 'int32', [B, beams, S]);
  const attentionMask = g.input(I.attentionMask, 'int32', [B, SRC]);
  const buckets = g.input(I.positionBuckets, 'int32', [S, T]);
  const causal = g.input(I.causalMask, dtype, [S, T]);

  // [heads, step, total] position bias plus causal mask, shared by every layer (HF: computed by the
  // first layer, passed on), broadcast over [batch, beams].
  const selfBias = add(relativePositionBias(P('decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'), buckets), causal);
  const crossBias = keyMaskBias(attentionMask, dtype); // [batch, 1, 1, src]

  // [batch, beams, step, heads*d_kv] <-> [batch, beams, heads, step, d_kv]
  const splitHeads = (x: Value) => transpose(reshape(x, [B, beams, S, H, D]), [0, 1, 3, 2, 4]);
  const mergeHeads = (x: Value) => reshape(transpose(x, [0, 1, 3, 2, 4]), [B, beams, S, H * D]);

  let d = gather(P('shared.weight'), ids, 0); // [batch, beams, step, d_model]
  for (let i = 0; i < config.numDecoderLayers; i++) {
    const b = `decoder.block.${i}`;

    // Causal self-attention over the cached and the new positions.
    const self = attentionWeights(P, `${b}.layer.0.SelfAttention`);
    const n0 = rmsNorm(d, P(`${b}.layer.0.layer_norm.weight`), eps);
    const pastKey = g.input(pastKeyName(i), dtype, [B, beams, H, PL, D]);
    const pastValue = g.input(pastValueName(i), dtype, [B, beams, H, PL, D]);
    const key = g.output(presentKeyName(i), concat([pastKey, splitHeads(project(n0, self.k))], 3)); // [b, beams, H, T, D]
    const value = g.output(presentValueName(i), concat([pastValue, splitHeads(project(n0, self.v))], 3));
    const q = splitHeads(project(n0, self.q));
    const scores = add(matmul(q, transpose(key, [0, 1, 2, 4, 3])), selfBias); // [b, beams, H, S, T]
    d = add(d, project(mergeHeads(matmul(softmax(scores, -1), value)), self.o));

    // Cross-attention: the beams' queries stacked as [batch, heads, beams*step, d_kv] against the
    // item's keys [batch, heads, src, d_kv]; the encoder padding mask applies.
    const cross = `${b}.layer.1.EncDecAttention`;
    const n1 = rmsNorm(d, P(`${b}.layer.1.layer_norm.weight`), eps);
    const crossKey = g.input(crossKeyName(i), dtype, [B, H, SRC, D]);
    const crossValue = g.input(crossValueName(i), dtype, [B, H, SRC, D]);
    const cq = reshape(transpose(reshape(project(n1, P(`${cross}.q.weight`)), [B, beams, S, H, D]), [0, 3, 1, 2, 4]), [B, H, dimProduct([beams, S]), D]);
    const cScores = add(matmul(cq, transpose(crossKey, [0, 1, 3, 2])), crossBias); // [b, H, beams*S, src]
    const cContext = transpose(reshape(matmul(softmax(cScores, -1), crossValue), [B, H, beams, S, D]), [0, 2, 3, 1, 4]); // [b, beams, S, H, D]
    d = add(d, project(reshape(cContext, [B, beams, S, H * D]), P(`${cross}.o.weight`)));

    const n2 = rmsNorm(d, P(`${b}.layer.2.layer_norm.weight`), eps);
    d = add(d, feedForwardWith(project, n2, feedForwardWeights(P, config, `${b}.layer.2`), config.activation));
  }

  // Only the last new position predicts the next token (the norm and head are per position).
  const last = gather(d, g.constant(Int32Array.of(-1), [], 'last_position'), 2); // [batch, beams, d_model]
  let sequence = rmsNorm(last, P('decoder.final_layer_norm.weight'), eps);
  if (config.tieWordEmbeddings) sequence = mul(sequence, scalarLike(sequence, config.dModel ** -0.5));
  const logits = project(sequence, config.tieWordEmbeddings ? P('shared.weight') : P('lm_head.weight'));
  g.output(STEP_LOG_PROBS, logSoftmax(logits, -1));
  return { graph: g, params };
}
