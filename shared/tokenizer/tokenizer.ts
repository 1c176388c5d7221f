// What the data pipeline, the trainer and generation need from a tokenizer, whatever its kind.

export type TokenizerKind = 'byte' | 'hf';

export interface DecodeOptions {
  /** Drop pad/eos/unk and other special tokens from the text (HF's `skip_special_tokens`). */
  readonly skipSpecialTokens?: boolean;
}

export interface Tokenizer {
  readonly kind: TokenizerKind;
  /** Number of ids the model's embedding must hold (largest id + 1). */
  readonly vocabSize: number;
  readonly padId: number;
  readonly eosId: number;
  readonly unkId: number;
  /**
   * sha256 (hex) of the tokenizer's definition. A data cache records it so a worker can refuse
   * token ids made by a different tokenizer than the one it runs with.
   */
  readonly fingerprint: string;
  /** Token ids of `text` WITHOUT special tokens; the data pipeline appends eos itself, as HF's T5 tokenizer does. */
  encode(text: string): number[];
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string;
}

/** The facts about a tokenizer that a data cache records and a reader checks against. */
export interface TokenizerIdentity {
  readonly kind: TokenizerKind;
  readonly vocab_size: number;
  readonly pad_id: number;
  readonly eos_id: number;
  readonly unk_id: number;
  readonly fingerprint: string;
}

export function tokenizerIdentity(t: Tokenizer): TokenizerIdentity {
  return {
    kind: t.kind,
    vocab_size: t.vocabSize,
    pad_id: t.padId,
    eos_id: t.eosId,
    unk_id: t.unkId,
    fingerprint: t.fingerprint,
  };
}
