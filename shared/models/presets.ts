import { PKO_T5_BASE, type T5ConfigInput } from './t5-config.js';

// Built-in model shapes, usable wherever a model directory is expected (`--model preset:t5-tiny`).
// `t5-small-bytes` / `t5-tiny` use the embedded byte-level tokenizer's 259 ids (pad 0, eos 1, unk 2,
// byte b -> b + 3), so they need no file from outside the repo.
export const T5_PRESETS: Readonly<Record<string, T5ConfigInput>> = Object.freeze({
  't5-tiny': {
    vocab_size: 259,
    d_model: 32,
    d_kv: 8,
    d_ff: 64,
    num_layers: 2,
    num_decoder_layers: 2,
    num_heads: 4,
    relative_attention_num_buckets: 32,
    relative_attention_max_distance: 128,
    dropout_rate: 0.1,
    feed_forward_proj: 'gated-gelu',
    tie_word_embeddings: false,
  },
  't5-small-bytes': {
    vocab_size: 259,
    d_model: 128,
    d_kv: 32,
    d_ff: 256,
    num_layers: 3,
    num_decoder_layers: 3,
    num_heads: 4,
    relative_attention_num_buckets: 32,
    relative_attention_max_distance: 128,
    dropout_rate: 0.1,
    feed_forward_proj: 'gated-gelu',
    tie_word_embeddings: false,
  },
  'pko-t5-base': PKO_T5_BASE,
});
