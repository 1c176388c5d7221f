// What an encoder-decoder model's decoding sessions offer the steppers and the generator (T5 in
// t5-decoding-sessions.ts, BART in bart-decoding-sessions.ts): the encoder run once per batch,
// returning each decoder layer's cross-attention keys/values, and a decoder step over rows laid out
// [items, beams] with a self-attention key/value cache. The search code never sees the family.

/** What the decoder needs from the source side of a batch, per item. */
export interface EncodedSources {
  readonly items: number;
  readonly srcLen: number;
  /** [items, srcLen], 1 for tokens, 0 for padding. */
  readonly attentionMask: Int32Array;
  /** Per decoder layer, [items, heads, srcLen, head_dim]. */
  readonly crossKeys: readonly Float32Array[];
  readonly crossValues: readonly Float32Array[];
}

export interface StepRequest {
  readonly beams: number;
  readonly stepLen: number;
  readonly pastLen: number;
  /** [items, beams, stepLen] token ids. */
  readonly tokens: Int32Array;
  readonly sources: EncodedSources;
  /** Per layer [items, beams, heads, pastLen, head_dim]; ignored (fed empty) when pastLen is 0. */
  readonly pastKeys: readonly Float32Array[];
  readonly pastValues: readonly Float32Array[];
  /** Fetch the present keys/values (false for decoding without a cache). */
  readonly present: boolean;
}

export interface StepResult {
  /** [items, beams, vocab] next-token log-probabilities (log-softmax of the last new position's logits). */
  readonly logProbs: Float32Array;
  /** Per layer [items, beams, heads, pastLen + stepLen, head_dim]; empty when not requested. */
  readonly presentKeys: Float32Array[];
  readonly presentValues: Float32Array[];
}

export interface EncoderDecoderSessions {
  /** heads x head_dim: the elements of one position of one layer's cached keys (or values) per row. */
  readonly kvWidth: number;
  /** Encode a padded batch: ids and mask [items, srcLen]. */
  encode(items: number, srcLen: number, inputIds: Int32Array, attentionMask: Int32Array): Promise<EncodedSources>;
  step(r: StepRequest): Promise<StepResult>;
  release(): Promise<void>;
}
