import { EngineError } from '../errors.js';
import { beamSearch } from './beam-search.js';
import { CachedStepper, UncachedStepper, type DecoderStepper } from './decoder-stepper.js';
import { parseGenerateOptions, type GenerateOptions, type GenerateOptionsInput, type SpecialTokens } from './generate-options.js';
import { greedySearch, type GeneratedSequence } from './greedy-search.js';
import type { EncodedSources, EncoderDecoderSessions } from './seq2seq-sessions.js';

// Keyphrase generation with an encoder-decoder model from token ids: the programmatic API (the CLI
// and predict_with_generate use it; it knows nothing of files or tokenizers). Inputs are encoder
// token ids as training feeds them; outputs are the generated ids (eos last when the model ended
// the sequence). The family (T5Generator, BartGenerator) supplies the sessions and its tokens:
//
//   const gen = await T5Generator.create(config, flatParams, { intraOpThreads: 2 });
//   const ids = await gen.generate([Int32Array.of(...)], { numBeams: 5, noRepeatNgramSize: 3 });
//   await gen.release();
//
// `flatParams` is viewed, not copied: in-place updates (a trainer's buffer) are seen by later calls.

export type { GeneratedSequence } from './greedy-search.js';

export interface GenerateProgress {
  /** Articles finished so far, of `total`. */
  readonly done: number;
  readonly total: number;
  /** New tokens of the finished articles (their outputs' lengths). */
  readonly tokens: number;
}

/** What the generator checks inputs against and starts decoding with. */
export interface Seq2SeqModelFacts {
  readonly vocabSize: number;
  readonly special: SpecialTokens;
  /** Longest encoder input (learned positions end there); null: no limit (relative positions). */
  readonly maxSourceLen: number | null;
  /** Most decoder positions, i.e. max_new_tokens at most (learned positions); null: no limit. */
  readonly maxTargetLen: number | null;
}

export class Seq2SeqGenerator {
  protected constructor(
    private readonly sessions: EncoderDecoderSessions,
    private readonly facts: Seq2SeqModelFacts,
  ) {}

  get specialTokens(): SpecialTokens {
    return this.facts.special;
  }

  /** Generated token ids per input, in input order. */
  async generate(inputs: readonly ArrayLike<number>[], options: GenerateOptionsInput = {}, onProgress?: (p: GenerateProgress) => void): Promise<number[][]> {
    return (await this.generateWithScores(inputs, options, onProgress)).map((s) => s.tokens);
  }

  /** As generate, with beam search's sequence scores. */
  async generateWithScores(
    inputs: readonly ArrayLike<number>[],
    options: GenerateOptionsInput = {},
    onProgress?: (p: GenerateProgress) => void,
  ): Promise<GeneratedSequence[]> {
    const o = parseGenerateOptions(options);
    const { maxTargetLen } = this.facts;
    // Checked before any work: the decoder would otherwise fail at the first position past its table.
    if (maxTargetLen !== null && o.maxNewTokens > maxTargetLen) throw new EngineError(`maxNewTokens ${o.maxNewTokens} exceeds the model's ${maxTargetLen} decoder positions`);
    inputs.forEach((ids, i) => this.checkInput(ids, i));
    const out: GeneratedSequence[] = [];
    let tokens = 0;
    for (let start = 0; start < inputs.length; start += o.batchSize) {
      const batch = await this.generateBatch(inputs.slice(start, start + o.batchSize), o);
      out.push(...batch);
      tokens += batch.reduce((n, s) => n + s.tokens.length, 0);
      onProgress?.({ done: out.length, total: inputs.length, tokens });
    }
    return out;
  }

  /** Encode a batch (padded to its longest input) and return a stepper over it, for tests and benches. */
  async startBatch(inputs: readonly ArrayLike<number>[], beams: number, useCache: boolean): Promise<DecoderStepper> {
    if (inputs.length === 0) throw new EngineError('a batch needs at least one input');
    inputs.forEach((ids, i) => this.checkInput(ids, i));
    const sources = await this.encode(inputs);
    return useCache ? new CachedStepper(this.sessions, sources, beams) : new UncachedStepper(this.sessions, sources, beams);
  }

  async release(): Promise<void> {
    await this.sessions.release();
  }

  private async generateBatch(inputs: readonly ArrayLike<number>[], o: GenerateOptions): Promise<GeneratedSequence[]> {
    const stepper = await this.startBatch(inputs, o.numBeams, o.useCache);
    return o.numBeams === 1 ? greedySearch(stepper, o, this.specialTokens) : beamSearch(stepper, o, this.specialTokens);
  }

  private encode(inputs: readonly ArrayLike<number>[]): Promise<EncodedSources> {
    const items = inputs.length;
    const srcLen = Math.max(...inputs.map((x) => x.length));
    const ids = new Int32Array(items * srcLen).fill(this.facts.special.padId);
    const mask = new Int32Array(items * srcLen);
    inputs.forEach((x, i) => {
      ids.set(x, i * srcLen);
      mask.fill(1, i * srcLen, i * srcLen + x.length);
    });
    return this.sessions.encode(items, srcLen, ids, mask);
  }

  /** Out-of-range ids would fail deep inside ORT's Gather; name the input and position instead. */
  private checkInput(ids: ArrayLike<number>, i: number): void {
    if (ids.length === 0) throw new EngineError(`input ${i} is empty (it needs at least the eos token)`);
    const { vocabSize: v, maxSourceLen } = this.facts;
    if (maxSourceLen !== null && ids.length > maxSourceLen) throw new EngineError(`input ${i} has ${ids.length} tokens, more than the model's ${maxSourceLen} positions`);
    for (let p = 0; p < ids.length; p++) {
      const id = ids[p]!;
      if (!Number.isInteger(id) || id < 0 || id >= v) throw new EngineError(`input ${i}: id ${id} at position ${p} is outside the vocabulary (0..${v - 1})`);
    }
  }
}
