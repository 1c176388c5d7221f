import type { BartConfig } from '../models/bart-config.js';
import type { EngineOptions } from '../onnx/session-options.js';
import { BartDecodingSessions } from './bart-decoding-sessions.js';
import { Seq2SeqGenerator } from './seq2seq-generator.js';

// BART's generator (seq2seq-generator.ts) with HF's defaults for BartForConditionalGeneration:
// decoding starts at decoder_start_token_id (eos for BART), and the config's forced_bos_token_id /
// forced_eos_token_id, where set, force the first new token and the max_new_tokens-th one
// (logits-processors.ts). Inputs are encoder ids as training feeds them (tokenizer ids + eos). The
// learned position tables bound both sides: at most max_position_embeddings source tokens and new
// tokens.

export type { GeneratedSequence, GenerateProgress } from './seq2seq-generator.js';

export class BartGenerator extends Seq2SeqGenerator {
  private constructor(
    readonly config: BartConfig,
    sessions: BartDecodingSessions,
  ) {
    super(sessions, {
      vocabSize: config.vocabSize,
      maxSourceLen: config.maxPositionEmbeddings,
      maxTargetLen: config.maxPositionEmbeddings,
      special: {
        decoderStartId: config.decoderStartTokenId,
        eosId: config.eosTokenId,
        padId: config.padTokenId,
        forcedBosId: config.forcedBosTokenId,
        forcedEosId: config.forcedEosTokenId,
      },
    });
  }

  /** `flatParams` in bartGenerationSpecs order (parameters, then final_logits_bias), viewed, not copied. */
  static async create(config: BartConfig, flatParams: Float32Array, options: Partial<EngineOptions> = {}): Promise<BartGenerator> {
    return new BartGenerator(config, await BartDecodingSessions.create(config, flatParams, options));
  }
}
