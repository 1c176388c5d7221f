import { z } from 'zod';
import { InputFileError } from '../errors.js';
import { readJsonFile } from '../json-file.js';
import { parseInput } from '../zod-issues.js';

// A Hugging Face BartConfig `config.json` (model_type 'bart': facebook/bart-*, KoBART,
// ainize/kobart-news). Unknown keys are kept (HF configs carry many we do not use, and generation
// reads num_beams, no_repeat_ngram_size, ... from `raw`); the ones the model uses are checked, and
// the fairseq-era switches that would build another network (pre-LN, a final layer norm, no
// embedding norm, a logits bias Linear) are refused by name rather than silently ignored.
export const BartConfigSchema = z
  .object({
    model_type: z.literal('bart').default('bart'),
    vocab_size: z.number().int().positive(),
    d_model: z.number().int().positive(),
    encoder_layers: z.number().int().positive(),
    decoder_layers: z.number().int().positive(),
    encoder_attention_heads: z.number().int().positive(),
    decoder_attention_heads: z.number().int().positive(),
    encoder_ffn_dim: z.number().int().positive(),
    decoder_ffn_dim: z.number().int().positive(),
    // HF's ACT2FN['gelu'] is GELUActivation, the exact erf form; other activations are refused below.
    activation_function: z.string().default('gelu'),
    max_position_embeddings: z.number().int().positive(),
    scale_embedding: z.boolean().default(false),
    pad_token_id: z.number().int().nonnegative().default(1),
    bos_token_id: z.number().int().nonnegative().default(0),
    eos_token_id: z.number().int().nonnegative().default(2),
    decoder_start_token_id: z.number().int().nonnegative().default(2),
    forced_bos_token_id: z.number().int().nonnegative().nullish(),
    forced_eos_token_id: z.number().int().nonnegative().nullish(),
    dropout: z.number().min(0).lt(1).default(0.1),
    attention_dropout: z.number().min(0).lt(1).default(0),
    activation_dropout: z.number().min(0).lt(1).default(0),
    init_std: z.number().positive().default(0.02),
    tie_word_embeddings: z.boolean().default(true),
    // Switches of older (fairseq-converted) configs: only BART's own values are built.
    normalize_before: z.boolean().default(false),
    add_final_layer_norm: z.boolean().default(false),
    normalize_embedding: z.boolean().default(true),
    add_bias_logits: z.boolean().default(false),
    static_position_embeddings: z.boolean().default(false),
    do_blenderbot_90_layernorm: z.boolean().default(false),
    extra_pos_embeddings: z.number().int().optional(),
  })
  .loose();

export type BartConfigInput = z.input<typeof BartConfigSchema>;

/** HF's BartLearnedPositionalEmbedding offset: position p is row p + 2 of embed_positions (fairseq's legacy). */
export const BART_POSITION_OFFSET = 2;

/** A validated BART config with derived fields filled in; frozen. */
export interface BartConfig {
  readonly raw: Readonly<Record<string, unknown>>;
  readonly vocabSize: number;
  readonly dModel: number;
  readonly encoderLayers: number;
  readonly decoderLayers: number;
  readonly encoderHeads: number;
  readonly decoderHeads: number;
  readonly encoderFfnDim: number;
  readonly decoderFfnDim: number;
  /** max_position_embeddings: the longest sequence either stack takes. */
  readonly maxPositionEmbeddings: number;
  /** Rows of each embed_positions table: max_position_embeddings + 2. */
  readonly positionRows: number;
  readonly scaleEmbedding: boolean;
  /** sqrt(d_model) when scale_embedding, else 1 (HF's embed_scale). */
  readonly embedScale: number;
  readonly padTokenId: number;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  readonly decoderStartTokenId: number;
  /** Null when the config does not set it. */
  readonly forcedBosTokenId: number | null;
  readonly forcedEosTokenId: number | null;
  /** `dropout`: embeddings, attention and feed-forward outputs. */
  readonly dropout: number;
  readonly attentionDropout: number;
  /** Inside the feed-forward, after the activation. */
  readonly activationDropout: number;
  readonly initStd: number;
  readonly tieWordEmbeddings: boolean;
  /** nn.LayerNorm's default eps: BART's layer norms are built without an eps argument. */
  readonly layerNormEps: number;
}

/** Validate a parsed config.json object; `source` names the file in errors. */
export function parseBartConfig(json: unknown, source = 'config.json'): BartConfig {
  const c = parseInput(BartConfigSchema, json, source, 'BART config');
  const problems: string[] = [];
  const refuse = (field: string, why: string) => problems.push(`${field}: ${why}`);
  if (c.activation_function !== 'gelu') refuse('activation_function', `'${c.activation_function}' is not supported (only 'gelu', the exact erf form)`);
  if (c.normalize_before) refuse('normalize_before', 'true (pre-LN, mBART-style) is not supported; BART is post-LN');
  if (c.add_final_layer_norm) refuse('add_final_layer_norm', 'true is not supported (BART has no final layer norm)');
  if (!c.normalize_embedding) refuse('normalize_embedding', 'false is not supported (BART normalises its embeddings: layernorm_embedding)');
  if (c.add_bias_logits) refuse('add_bias_logits', 'true is not supported (the logits bias is the final_logits_bias buffer)');
  if (c.static_position_embeddings) refuse('static_position_embeddings', 'true is not supported (BART learns its positions)');
  if (c.do_blenderbot_90_layernorm) refuse('do_blenderbot_90_layernorm', 'true is not supported (Blenderbot-90M\'s layer norm order, not BART\'s)');
  if (c.extra_pos_embeddings !== undefined && c.extra_pos_embeddings !== BART_POSITION_OFFSET) refuse('extra_pos_embeddings', `${c.extra_pos_embeddings} is not supported (HF BART's offset is ${BART_POSITION_OFFSET})`);
  if (c.d_model % c.encoder_attention_heads !== 0) refuse('encoder_attention_heads', `d_model ${c.d_model} is not a multiple of ${c.encoder_attention_heads}`);
  if (c.d_model % c.decoder_attention_heads !== 0) refuse('decoder_attention_heads', `d_model ${c.d_model} is not a multiple of ${c.decoder_attention_heads}`);
  for (const field of ['pad_token_id', 'bos_token_id', 'eos_token_id', 'decoder_start_token_id', 'forced_bos_token_id', 'forced_eos_token_id'] as const) {
    const id = c[field];
    if (typeof id === 'number' && id >= c.vocab_size) refuse(field, `${id} is outside the vocabulary (vocab_size ${c.vocab_size})`);
  }
  if (problems.length > 0) throw new InputFileError(source, '', `invalid BART config: ${problems.join('; ')}`);
  return Object.freeze({
    raw: Object.freeze({ ...c }),
    vocabSize: c.vocab_size,
    dModel: c.d_model,
    encoderLayers: c.encoder_layers,
    decoderLayers: c.decoder_layers,
    encoderHeads: c.encoder_attention_heads,
    decoderHeads: c.decoder_attention_heads,
    encoderFfnDim: c.encoder_ffn_dim,
    decoderFfnDim: c.decoder_ffn_dim,
    maxPositionEmbeddings: c.max_position_embeddings,
    positionRows: c.max_position_embeddings + BART_POSITION_OFFSET,
    scaleEmbedding: c.scale_embedding,
    embedScale: c.scale_embedding ? Math.sqrt(c.d_model) : 1,
    padTokenId: c.pad_token_id,
    bosTokenId: c.bos_token_id,
    eosTokenId: c.eos_token_id,
    decoderStartTokenId: c.decoder_start_token_id,
    forcedBosTokenId: c.forced_bos_token_id ?? null,
    forcedEosTokenId: c.forced_eos_token_id ?? null,
    dropout: c.dropout,
    attentionDropout: c.attention_dropout,
    activationDropout: c.activation_dropout,
    initStd: c.init_std,
    tieWordEmbeddings: c.tie_word_embeddings,
    layerNormEps: 1e-5,
  });
}

export function readBartConfig(path: string): BartConfig {
  return parseBartConfig(readJsonFile(path, 'config'), path);
}

/** The config.json object written next to exported weights (HF-loadable). */
export function bartConfigJson(config: BartConfig): Record<string, unknown> {
  return { ...config.raw, architectures: ['BartForConditionalGeneration'], model_type: 'bart' };
}

/**
 * Built-in BART shapes. 'bart-tiny' uses the embedded byte tokenizer's 259 ids (pad 0, eos 1, unk 2,
 * no bos of its own: bos = eos), with BART's convention that decoding starts at eos.
 * 'kobart-news' (ainize/kobart-news, a KoBART fine-tuned on news summaries): the shapes of its
 * published config (vocab 30000, d_model 768, 6+6 layers, 16 heads, ffn 3072, max positions 1026)
 * and the token ids of KoBART's (v1) config.json as quoted in public repositories (bos <s> 0, eos
 * </s> 1, pad 3, decoder_start 1, forced_eos 1; KoBART v2 derivatives say bos_token_id 1). The
 * ainize file itself was not reachable from here: a checkpoint folder's own config.json wins anyway.
 */
export const BART_PRESETS: Readonly<Record<string, BartConfigInput>> = Object.freeze({
  'bart-tiny': {
    vocab_size: 259,
    d_model: 32,
    encoder_layers: 2,
    decoder_layers: 2,
    encoder_attention_heads: 4,
    decoder_attention_heads: 4,
    encoder_ffn_dim: 64,
    decoder_ffn_dim: 64,
    activation_function: 'gelu',
    max_position_embeddings: 1024,
    scale_embedding: false,
    pad_token_id: 0,
    bos_token_id: 1,
    eos_token_id: 1,
    decoder_start_token_id: 1,
    forced_eos_token_id: 1,
    dropout: 0.1,
    attention_dropout: 0,
    activation_dropout: 0,
    init_std: 0.02,
  },
  'kobart-news': {
    vocab_size: 30000,
    d_model: 768,
    encoder_layers: 6,
    decoder_layers: 6,
    encoder_attention_heads: 16,
    decoder_attention_heads: 16,
    encoder_ffn_dim: 3072,
    decoder_ffn_dim: 3072,
    activation_function: 'gelu',
    max_position_embeddings: 1026,
    scale_embedding: false,
    pad_token_id: 3,
    bos_token_id: 0,
    eos_token_id: 1,
    decoder_start_token_id: 1,
    forced_eos_token_id: 1,
    dropout: 0.1,
    attention_dropout: 0,
    activation_dropout: 0,
    init_std: 0.02,
  },
});
