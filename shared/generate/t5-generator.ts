import type { T5Config } from '../models/t5-config.js';
import type { EngineOptions } from '../onnx/session-options.js';
import { Seq2SeqGenerator } from './seq2seq-generator.js';
import { T5DecodingSessions } from './t5-decoding-sessions.js';

// T5's generator (seq2seq-generator.ts): inputs are encoder token ids as training feeds them (eos
// last); decoding starts at decoder_start_token_id (the pad token) with no forced tokens.

export type { GeneratedSequence, GenerateProgress } from './seq2seq-generator.js';

export class T5Generator extends Seq2SeqGenerator {
  private constructor(
    readonly config: T5Config,
    sessions: T5DecodingSessions,
  ) {
    // Relative position buckets: any source length.
    super(sessions, { vocabSize: config.vocabSize, maxSourceLen: null, maxTargetLen: null, special: { decoderStartId: config.decoderStartTokenId, eosId: config.eosTokenId, padId: config.padTokenId } });
  }

  static async create(config: T5Config, flatParams: Float32Array, options: Partial<EngineOptions> = {}): Promise<T5Generator> {
    return new T5Generator(config, await T5DecodingSessions.create(config, flatParams, options));
  }
}
