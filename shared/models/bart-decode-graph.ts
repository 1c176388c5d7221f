import type { FloatDType } from '../onnx/dtype.js';
import { Graph, type Value } from '../onnx/graph.js';
import { concat, gather, logSoftmax, shapeOf } from '../onnx/ops.js';
import type { Dim } from '../onnx/shape.js';
import type { BartConfig } from './bart-config.js';
import { bartEmbed, BartDropout, bartLmHead, crossAttentionSublayer, feedForwardSublayer, NO_ADAPTERS, selfAttentionSublayer } from './bart-layers.js';
import {
  bartCrossKeyName, bartCrossValueName, bartLayerLookup, bartStackLookup, declareBartParams, type BartPartGraph,
} from './bart-encoder-graph.js';
import { BART_LOGITS_BIAS, BART_SHARED } from './bart-params.js';
import { keyMaskBias } from './t5-stack-layers.js';

// One decoder step of BartForConditionalGeneration with a key/value cache (HF's past_key_values),
// composed from bart-layers' sublayers (the training graph's own code; the cache enters through
// their `cache` hook).
//
// Rows are laid out [batch, beams] (item-major, as HF expands inputs for beam search) and come in
// flattened: decoder_input_ids [rows, step_len] with rows = batch x beams. Self-attention keys and
// values of earlier positions come in as past_key.i / past_value.i [rows, heads, past_len, head_dim]
// (past_len may be 0), the new positions' are appended, and the whole is returned as present_key.i
// / present_value.i [rows, heads, past_len + step_len, head_dim]. Cross-attention keys/values come
// in once per item, [batch, heads, src_len, head_dim] (bart-encoder-graph.ts), and the beams of an
// item are stacked on the query axis ([batch, beams*step_len, d]) against them, so nothing of source
// length is expanded or reordered per beam: cross-attention has no causal mask, so stacking
// queries changes nothing for any of them. The beam count is then rows / batch at run time: one
// graph serves greedy and every beam width.
//
// Positions: the new tokens sit at past_len .. past_len + step_len - 1, fed as `decoder_positions`
// [step_len] (HF: embed_positions(input, past_key_values_length); bartEmbed adds the offset 2);
// `self_causal_mask` [step_len, past_len + step_len] is 0 where a query may see a key and finfo.min
// after it (bartStepTables in bart-decoding-sessions.ts). With past_len 0 and the whole prefix as new positions the same graph is
// the decoder without a cache (HF use_cache=False). The output is the log-softmax of the last new
// position's logits (lm_head + final_logits_bias), [rows, vocab]: what beam search scores with;
// greedy's argmax is the same as on the logits.

export const BART_STEP_ROWS = 'rows';
export const BART_STEP_BATCH = 'batch';
export const BART_STEP_LEN = 'step_len';
export const BART_PAST_LEN = 'past_len';
export const BART_STEP_SRC_LEN = 'src_len';
export const BART_STEP_LOG_PROBS = 'log_probs';
/** Keys seen by the new queries: the past and the new positions. */
export const BART_TOTAL_LEN = `${BART_PAST_LEN}+${BART_STEP_LEN}`;

export const BART_STEP_INPUTS = {
  decoderInputIds: 'decoder_input_ids',
  attentionMask: 'attention_mask',
  positions: 'decoder_positions',
  causalMask: 'self_causal_mask',
} as const;

export const bartPastKeyName = (layer: number): string => `past_key.${layer}`;
export const bartPastValueName = (layer: number): string => `past_value.${layer}`;
export const bartPresentKeyName = (layer: number): string => `present_key.${layer}`;
export const bartPresentValueName = (layer: number): string => `present_value.${layer}`;

/** Reshape to `shape`, whose dims come at run time from `dims` (int64 pieces concatenated, -1 allowed). */
function reshapeTo(x: Value, dims: readonly Value[], shape: readonly Dim[]): Value {
  return x.graph.emit('Reshape', [x, concat(dims, 0)], {}, [{ dtype: x.dtype, shape }])[0]!;
}

/** Dimension `axis` of `x` as an int64 [1]. */
function dimOf(x: Value, axis: number): Value {
  return gather(shapeOf(x), x.graph.ints([axis]), 0);
}

export function buildBartDecodeStepGraph(config: BartConfig, dtype: FloatDType = 'float32'): BartPartGraph {
  const g = new Graph('bart_decoder_step');
  const head = config.tieWordEmbeddings ? BART_SHARED : 'lm_head.weight';
  // The whole decoder. Its cross-attention key/value projections are declared because
  // bartAttention builds them before the cache hook replaces their output; nothing reads them, so
  // serialisation drops those nodes (the encoder graph applies the projections) and their inputs
  // are fed as views that are never read.
  const { P, params } = declareBartParams(g, config, dtype, (n) => n === BART_SHARED || n === head || n === BART_LOGITS_BIAS || n.startsWith('model.decoder.'));
  const I = BART_STEP_INPUTS;
  const [R, B, S, PL, SRC, T] = [BART_STEP_ROWS, BART_STEP_BATCH, BART_STEP_LEN, BART_PAST_LEN, BART_STEP_SRC_LEN, BART_TOTAL_LEN];
  const H = config.decoderHeads;
  const hd = config.dModel / H;
  const d = config.dModel;

  const ids = g.input(I.decoderInputIds, 'int32', [R, S]);
  const attentionMask = g.input(I.attentionMask, 'int32', [B, SRC]);
  const positions = g.input(I.positions, 'int32', [S]);
  const selfBias = g.input(I.causalMask, dtype, [S, T]); // broadcast over [rows, heads]
  const crossBias = keyMaskBias(attentionMask, dtype); // [batch, 1, 1, src]
  const dropout = new BartDropout(g, config, 0, false);
  // [rows, S, d] <-> [batch, beams*S, d]: an item's beams stacked on the query axis.
  const stackBeams = (x: Value) => reshapeTo(x, [dimOf(attentionMask, 0), g.ints([-1, d])], [B, `beams*${S}`, d]);
  const unstackBeams = (x: Value) => reshapeTo(x, [g.ints([-1]), dimOf(positions, 0), g.ints([d])], [R, S, d]);

  let h = bartEmbed(ids, positions, bartStackLookup(P, 'decoder'), config, dropout, 'decoder.'); // [rows, S, d]
  for (let i = 0; i < config.decoderLayers; i++) {
    const Pl = bartLayerLookup(P, 'decoder', i);
    const site = `decoder.${i}.`;
    const pastKey = g.input(bartPastKeyName(i), dtype, [R, H, PL, hd]);
    const pastValue = g.input(bartPastValueName(i), dtype, [R, H, PL, hd]);
    const selfCache = (k: Value, v: Value) => ({
      k: g.output(bartPresentKeyName(i), concat([pastKey, k], 2)), // [rows, H, T, hd]
      v: g.output(bartPresentValueName(i), concat([pastValue, v], 2)),
    });
    h = selfAttentionSublayer(h, Pl, config, 'decoder', selfBias, NO_ADAPTERS, dropout, site, selfCache);

    // The item's encoder keys/values replace the projections of `kv` (see above).
    const crossKey = g.input(bartCrossKeyName(i), dtype, [B, H, SRC, hd]);
    const crossValue = g.input(bartCrossValueName(i), dtype, [B, H, SRC, hd]);
    const stacked = stackBeams(h);
    h = unstackBeams(crossAttentionSublayer(stacked, stacked, Pl, config, crossBias, NO_ADAPTERS, dropout, site, () => ({ k: crossKey, v: crossValue })));
    h = feedForwardSublayer(h, Pl, config, NO_ADAPTERS, dropout, site);
  }

  // Only the last new position predicts the next token (the head is per position).
  const last = gather(h, g.constant(Int32Array.of(-1), [], 'last_position'), 1); // [rows, d]
  g.output(BART_STEP_LOG_PROBS, logSoftmax(bartLmHead(last, P(head), P(BART_LOGITS_BIAS)), -1));
  return { graph: g, params };
}
