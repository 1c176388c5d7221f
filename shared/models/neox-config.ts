import { z } from 'zod';
import { InputFileError } from '../errors.js';
import { readJsonFile } from '../json-file.js';
import { parseInput } from '../zod-issues.js';

// A Hugging Face GPTNeoXConfig `config.json` (model_type 'gpt_neox': Pythia, polyglot-ko).
// Unknown keys are kept (HF configs carry many we do not use); the ones we use are checked.
export const NeoXConfigSchema = z
  .object({
    model_type: z.literal('gpt_neox').default('gpt_neox'),
    vocab_size: z.number().int().positive(),
    hidden_size: z.number().int().positive(),
    num_hidden_layers: z.number().int().positive(),
    num_attention_heads: z.number().int().positive(),
    intermediate_size: z.number().int().positive(),
    // Newer transformers also write these under RoPE's common names (rope_theta,
    // partial_rotary_factor, or both inside rope_parameters); the classic names win when present.
    rotary_pct: z.number().min(0).max(1).optional(),
    rotary_emb_base: z.number().positive().optional(),
    rope_theta: z.number().positive().optional(),
    partial_rotary_factor: z.number().min(0).max(1).optional(),
    rope_parameters: z.object({ rope_type: z.string().optional(), rope_theta: z.number().positive().optional(), partial_rotary_factor: z.number().min(0).max(1).optional() }).loose().nullish(),
    rope_scaling: z.object({ rope_type: z.string().optional(), type: z.string().optional() }).loose().nullish(),
    max_position_embeddings: z.number().int().positive().default(2048),
    layer_norm_eps: z.number().positive().default(1e-5),
    use_parallel_residual: z.boolean().default(true),
    // HF maps 'gelu' to GELUActivation (exact, erf); the others are refused with a clear message below.
    hidden_act: z.string().default('gelu'),
    attention_dropout: z.number().min(0).max(1).default(0),
    hidden_dropout: z.number().min(0).max(1).default(0),
    tie_word_embeddings: z.boolean().default(false),
    initializer_range: z.number().positive().default(0.02),
    attention_bias: z.boolean().default(true),
    bos_token_id: z.number().int().nonnegative().default(0),
    eos_token_id: z.number().int().nonnegative().default(2),
    pad_token_id: z.number().int().nonnegative().nullish(),
  })
  .loose();

export type NeoXConfigInput = z.input<typeof NeoXConfigSchema>;

/** A validated GPT-NeoX config with derived fields filled in; frozen. */
export interface NeoXConfig {
  readonly raw: Readonly<Record<string, unknown>>;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  /** hidden_size / num_attention_heads. */
  readonly headSize: number;
  readonly intermediateSize: number;
  /** int(head_size * rotary_pct), as HF's GPTNeoXAttention (even). */
  readonly rotaryNdims: number;
  readonly rotaryBase: number;
  readonly maxPositionEmbeddings: number;
  readonly layerNormEps: number;
  readonly useParallelResidual: boolean;
  readonly attentionDropout: number;
  readonly hiddenDropout: number;
  readonly initializerRange: number;
  readonly attentionBias: boolean;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  /** The id padding uses (config pad_token_id, else eos as HF's generate does). */
  readonly padTokenId: number;
}

/** Validate a parsed config.json object; `source` names the file in errors. */
export function parseNeoXConfig(json: unknown, source = 'config.json'): NeoXConfig {
  const c = parseInput(NeoXConfigSchema, json, source, 'GPT-NeoX config');
  const bad = (msg: string): never => {
    throw new InputFileError(source, '', `invalid GPT-NeoX config: ${msg}`);
  };
  if (c.hidden_act !== 'gelu') bad(`hidden_act: '${c.hidden_act}' is not supported (only 'gelu', the exact erf form)`);
  if (c.tie_word_embeddings) bad('tie_word_embeddings: true is not supported (GPTNeoXForCausalLM keeps embed_out separate)');
  if (!c.attention_bias) bad('attention_bias: false is not supported (query_key_value and dense carry biases)');
  const scaling = c.rope_scaling?.rope_type ?? c.rope_scaling?.type ?? c.rope_parameters?.rope_type ?? 'default';
  if (scaling !== 'default') bad(`RoPE scaling '${scaling}' is not supported (plain rotary only)`);
  const rotaryPct = c.rotary_pct ?? c.partial_rotary_factor ?? c.rope_parameters?.partial_rotary_factor ?? 0.25;
  const rotaryBase = c.rotary_emb_base ?? c.rope_theta ?? c.rope_parameters?.rope_theta ?? 10000;
  if (c.hidden_size % c.num_attention_heads !== 0) bad(`hidden_size ${c.hidden_size} is not a multiple of num_attention_heads ${c.num_attention_heads}`);
  const headSize = c.hidden_size / c.num_attention_heads;
  const rotaryNdims = Math.floor(headSize * rotaryPct);
  if (rotaryNdims % 2 !== 0) bad(`rotary dims int(${headSize} * ${rotaryPct}) = ${rotaryNdims} is odd (rotate_half needs halves)`);
  return Object.freeze({
    raw: Object.freeze({ ...c }),
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    headSize,
    intermediateSize: c.intermediate_size,
    rotaryNdims,
    rotaryBase,
    maxPositionEmbeddings: c.max_position_embeddings,
    layerNormEps: c.layer_norm_eps,
    useParallelResidual: c.use_parallel_residual,
    attentionDropout: c.attention_dropout,
    hiddenDropout: c.hidden_dropout,
    initializerRange: c.initializer_range,
    attentionBias: c.attention_bias,
    bosTokenId: c.bos_token_id,
    eosTokenId: c.eos_token_id,
    padTokenId: c.pad_token_id ?? c.eos_token_id,
  });
}

export function readNeoXConfig(path: string): NeoXConfig {
  return parseNeoXConfig(readJsonFile(path, 'config'), path);
}

/** The config.json object written next to exported weights (HF-loadable). */
export function neoxConfigJson(config: NeoXConfig): Record<string, unknown> {
  return { ...config.raw, architectures: ['GPTNeoXForCausalLM'], model_type: 'gpt_neox' };
}

/**
 * Built-in GPT-NeoX shapes. 'neox-tiny' uses the embedded byte tokenizer's 259 ids (pad 0, eos 1).
 * 'polyglot-ko-1.3b': shapes from the model card (24 layers, d_model 2048, d_ff 8192, 16 heads of
 * 128, RoPE on 64 dims = rotary_pct 0.5, n_ctx 2048, vocab 30080) and a copy of its config.json
 * quoted in a public repository (rotary_emb_base 10000, layer_norm_eps 1e-5, initializer_range
 * 0.02, bos 0, eos 0, untied). The hub file itself was not reachable from here: check bos/eos
 * against it before relying on them (a checkpoint's own config.json wins anyway).
 */
export const NEOX_PRESETS: Readonly<Record<string, NeoXConfigInput>> = Object.freeze({
  'neox-tiny': {
    vocab_size: 259,
    hidden_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    intermediate_size: 128,
    rotary_pct: 0.5,
    rotary_emb_base: 10000,
    max_position_embeddings: 2048,
    bos_token_id: 1,
    eos_token_id: 1,
    pad_token_id: 0,
  },
  'polyglot-ko-1.3b': {
    vocab_size: 30080,
    hidden_size: 2048,
    num_hidden_layers: 24,
    num_attention_heads: 16,
    intermediate_size: 8192,
    rotary_pct: 0.5,
    rotary_emb_base: 10000,
    max_position_embeddings: 2048,
    layer_norm_eps: 1e-5,
    initializer_range: 0.02,
    use_parallel_residual: true,
    hidden_act: 'gelu',
    tie_word_embeddings: false,
    bos_token_id: 0,
    eos_token_id: 0,
  },
});
