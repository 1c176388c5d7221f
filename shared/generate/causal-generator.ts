import { EngineError } from '../errors.js';
import type { NeoXConfig } from '../models/neox-config.js';
import type { EngineOptions } from '../onnx/session-options.js';
import { beamSearch } from './beam-search.js';
import { CachedCausalStepper, leftPad, UncachedCausalStepper, type LeftPaddedPrompts } from './causal-stepper.js';
import type { DecoderStepper } from './decoder-stepper.js';
import { parseGenerateOptions, type GenerateOptions, type GenerateOptionsInput, type SpecialTokens } from './generate-options.js';
import { greedySearch, type GeneratedSequence } from './greedy-search.js';
import { NeoXDecodingSessions } from './neox-decoding-sessions.js';
import type { GenerateProgress } from './seq2seq-generator.js';

// Keyphrase generation with a decoder-only model (GPTNeoXForCausalLM), T5Generator's API: inputs
// are prompts as training feeds them before the target (a causal cache's prompt ids:
// input_prefix + article + target_prefix, no eos), left-padded per batch; outputs are the new
// tokens only (eos last when the model ended the sequence), as HF's
// `generate(...)[:, prompt_len:]`. Greedy and beam search are the searches T5 uses.
//
// NoRepeatNGram: for a decoder-only model HF's processor sees `input_ids`, which is the whole
// left-padded prompt followed by the generated tokens, so an n-gram of the prompt (the article)
// is banned in the output too. That is matched here (the searches get the padded prompt as each
// item's prefix); it differs from T5, whose decoder sequence starts at the start token.

export class CausalGenerator {
  private constructor(
    readonly config: NeoXConfig,
    private readonly sessions: NeoXDecodingSessions,
  ) {}

  /** `flatParams` in neoxParamSpecs order (a LoRA model merged first), viewed, not copied. */
  static async create(config: NeoXConfig, flatParams: Float32Array, options: Partial<EngineOptions> = {}): Promise<CausalGenerator> {
    return new CausalGenerator(config, await NeoXDecodingSessions.create(config, flatParams, options));
  }

  /** The start token is never fed (the prompt's last token is what the model continues from). */
  get specialTokens(): SpecialTokens {
    return { decoderStartId: this.config.padTokenId, eosId: this.config.eosTokenId, padId: this.config.padTokenId };
  }

  async generate(prompts: readonly ArrayLike<number>[], options: GenerateOptionsInput = {}, onProgress?: (p: GenerateProgress) => void): Promise<number[][]> {
    return (await this.generateWithScores(prompts, options, onProgress)).map((s) => s.tokens);
  }

  async generateWithScores(
    prompts: readonly ArrayLike<number>[],
    options: GenerateOptionsInput = {},
    onProgress?: (p: GenerateProgress) => void,
  ): Promise<GeneratedSequence[]> {
    const o = parseGenerateOptions(options);
    prompts.forEach((ids, i) => this.checkPrompt(ids, i));
    const out: GeneratedSequence[] = [];
    let tokens = 0;
    for (let start = 0; start < prompts.length; start += o.batchSize) {
      const batch = await this.generateBatch(prompts.slice(start, start + o.batchSize), o);
      out.push(...batch);
      tokens += batch.reduce((n, s) => n + s.tokens.length, 0);
      onProgress?.({ done: out.length, total: prompts.length, tokens });
    }
    return out;
  }

  /** Left-pad a batch and return a stepper over it, for tests and benches. */
  startBatch(prompts: readonly ArrayLike<number>[], beams: number, useCache: boolean): DecoderStepper {
    if (prompts.length === 0) throw new EngineError('a batch needs at least one prompt');
    prompts.forEach((ids, i) => this.checkPrompt(ids, i));
    return this.stepper(leftPad(prompts, this.config.padTokenId), beams, useCache);
  }

  async release(): Promise<void> {
    await this.sessions.release();
  }

  private stepper(padded: LeftPaddedPrompts, beams: number, useCache: boolean): DecoderStepper {
    return useCache ? new CachedCausalStepper(this.sessions, padded, beams) : new UncachedCausalStepper(this.sessions, padded, beams);
  }

  /** Prompts already checked. */
  private async generateBatch(prompts: readonly ArrayLike<number>[], o: GenerateOptions): Promise<GeneratedSequence[]> {
    const padded = leftPad(prompts, this.config.padTokenId);
    const stepper = this.stepper(padded, o.numBeams, o.useCache);
    const prefixes = paddedRows(padded);
    return o.numBeams === 1 ? greedySearch(stepper, o, this.specialTokens, prefixes) : beamSearch(stepper, o, this.specialTokens, prefixes);
  }

  private checkPrompt(ids: ArrayLike<number>, i: number): void {
    if (ids.length === 0) throw new EngineError(`prompt ${i} is empty`);
    const v = this.config.vocabSize;
    for (let p = 0; p < ids.length; p++) {
      const id = ids[p]!;
      if (!Number.isInteger(id) || id < 0 || id >= v) throw new EngineError(`prompt ${i}: id ${id} at position ${p} is outside the vocabulary (0..${v - 1})`);
    }
    if (ids.length > this.config.maxPositionEmbeddings) throw new EngineError(`prompt ${i} has ${ids.length} tokens, more than max_position_embeddings ${this.config.maxPositionEmbeddings}`);
  }
}

/** Each item's row of the padded prompts (what HF's input_ids holds before the new tokens). */
function paddedRows(p: LeftPaddedPrompts): number[][] {
  return Array.from({ length: p.items }, (_, i) => Array.from(p.ids.subarray(i * p.len, (i + 1) * p.len)));
}
