import { z } from 'zod';
import { readJsonFile } from '../json-file.js';
import { parseInput } from '../zod-issues.js';

// A Hugging Face T5 `config.json`, as written by transformers for T5 v1.1 (pko-t5) and original T5.
// Unknown keys are kept (HF configs carry many we do not use); the ones we use are checked.
export const T5ConfigSchema = z
  .object({
    model_type: z.literal('t5').default('t5'),
    vocab_size: z.number().int().positive(),
    d_model: z.number().int().positive(),
    d_kv: z.number().int().positive(),
    d_ff: z.number().int().positive(),
    num_layers: z.number().int().positive(),
    num_decoder_layers: z.number().int().positive().nullish(),
    num_heads: z.number().int().positive(),
    relative_attention_num_buckets: z.number().int().positive().default(32),
    relative_attention_max_distance: z.number().int().positive().default(128),
    dropout_rate: z.number().min(0).max(1).default(0.1),
    layer_norm_epsilon: z.number().positive().default(1e-6),
    initializer_factor: z.number().positive().default(1.0),
    // 'gated-gelu' (T5 v1.1: gelu_new, gated), 'relu' (original T5), 'gated-relu', 'gelu_new'.
    feed_forward_proj: z.enum(['relu', 'gated-gelu', 'gated-relu', 'gelu_new', 'gated-gelu_new']).default('relu'),
    tie_word_embeddings: z.boolean().default(true),
    pad_token_id: z.number().int().nonnegative().default(0),
    eos_token_id: z.number().int().nonnegative().default(1),
    decoder_start_token_id: z.number().int().nonnegative().default(0),
  })
  .loose();

export type T5ConfigInput = z.input<typeof T5ConfigSchema>;

/** A validated T5 config with derived fields filled in; frozen. */
export interface T5Config {
  readonly raw: Readonly<Record<string, unknown>>;
  readonly vocabSize: number;
  readonly dModel: number;
  readonly dKv: number;
  readonly dFf: number;
  readonly numHeads: number;
  readonly numEncoderLayers: number;
  readonly numDecoderLayers: number;
  readonly numBuckets: number;
  readonly maxDistance: number;
  readonly dropoutRate: number;
  readonly layerNormEpsilon: number;
  readonly initializerFactor: number;
  readonly activation: 'relu' | 'gelu_new';
  readonly gated: boolean;
  readonly tieWordEmbeddings: boolean;
  readonly padTokenId: number;
  readonly eosTokenId: number;
  readonly decoderStartTokenId: number;
}

/** Validate a parsed config.json object; `source` names the file in errors. */
export function parseT5Config(json: unknown, source = 'config.json'): T5Config {
  const c = parseInput(T5ConfigSchema, json, source, 'T5 config');
  const ff = c.feed_forward_proj;
  return Object.freeze({
    raw: Object.freeze({ ...c }),
    vocabSize: c.vocab_size,
    dModel: c.d_model,
    dKv: c.d_kv,
    dFf: c.d_ff,
    numHeads: c.num_heads,
    numEncoderLayers: c.num_layers,
    numDecoderLayers: c.num_decoder_layers ?? c.num_layers,
    numBuckets: c.relative_attention_num_buckets,
    maxDistance: c.relative_attention_max_distance,
    dropoutRate: c.dropout_rate,
    layerNormEpsilon: c.layer_norm_epsilon,
    initializerFactor: c.initializer_factor,
    // HF maps 'gated-gelu' to gelu_new (the tanh approximation), see T5Config.__init__.
    activation: ff.endsWith('relu') ? 'relu' : 'gelu_new',
    gated: ff.startsWith('gated-'),
    tieWordEmbeddings: c.tie_word_embeddings,
    padTokenId: c.pad_token_id,
    eosTokenId: c.eos_token_id,
    decoderStartTokenId: c.decoder_start_token_id,
  });
}

export function readT5Config(path: string): T5Config {
  return parseT5Config(readJsonFile(path, 'config'), path);
}

/** The config.json object written next to exported weights (HF-loadable). */
export function t5ConfigJson(config: T5Config): Record<string, unknown> {
  return {
    ...config.raw,
    architectures: ['T5ForConditionalGeneration'],
    model_type: 't5',
  };
}

/** Shapes of `paust/pko-t5-base` (T5 v1.1), used by benchmarks and the big-shape test. */
export const PKO_T5_BASE: T5ConfigInput = {
  vocab_size: 50358,
  d_model: 768,
  d_kv: 64,
  d_ff: 2048,
  num_layers: 12,
  num_decoder_layers: 12,
  num_heads: 12,
  relative_attention_num_buckets: 32,
  relative_attention_max_distance: 128,
  dropout_rate: 0.1,
  layer_norm_epsilon: 1e-6,
  initializer_factor: 1.0,
  feed_forward_proj: 'gated-gelu',
  tie_word_embeddings: false,
  pad_token_id: 0,
  eos_token_id: 1,
  decoder_start_token_id: 0,
};
