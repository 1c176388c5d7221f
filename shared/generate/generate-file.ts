import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { KpCoordError } from '../errors.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { writeBytesAtomically } from '../weights/atomic-file.js';
import type { EngineOptions } from '../onnx/session-options.js';
import type { GenerateOptions } from './generate-options.js';
import type { GenerationRow } from './generation-rows.js';
import type { DataRules } from '../data/data-rules.js';
import { causalTexts } from '../data/prepare.js';
import { createGenerator } from './keyphrase-generator.js';
import { causalKeyphrases, idsBeforeEos, postprocessKeyphrases, PREDICTION_SEPARATOR, type PostprocessOptions } from './keyphrase-postprocess.js';
import type { GenerationModel } from './load-generation-model.js';
import type { GenerateProgress } from './seq2seq-generator.js';

// `kp-coord generate` without the command line: articles (read by readGenerationRows with training's
// text rules) -> model input ids (T5 and BART: the tokenizer, eos appended; GPT-NeoX: the prompt as a causal
// cache stores it, input text + target prefix) -> the model's generator -> decoded, post-processed
// keyphrases (GPT-NeoX: cut at eos or a prefix first) -> a JSONL file written atomically.

export interface GenerateFileOptions {
  readonly model: GenerationModel;
  readonly tokenizer: Tokenizer;
  /** Names the tokenizer in errors ("builtin", a path). */
  readonly tokenizerName: string;
  readonly rows: readonly GenerationRow[];
  readonly out: string;
  readonly generate: GenerateOptions;
  readonly postprocess: PostprocessOptions;
  /** The prefixes training used (a decoder-only model's prompt ends with target_prefix; its output is cut where a prefix starts again). */
  readonly rules: Pick<DataRules, 'input_prefix' | 'target_prefix'>;
  /**
   * Truncate inputs to this many tokens, eos included (HF truncation=True); null: no limit. A
   * decoder-only prompt keeps its target prefix: the article is cut before it.
   */
  readonly maxInputTokens: number | null;
  readonly engine?: Partial<EngineOptions>;
  readonly onProgress?: (p: GenerateProgress) => void;
}

export interface GenerateFileReport {
  readonly out: string;
  readonly rows: number;
  readonly rows_with_label: number;
  readonly truncated_inputs: number;
  readonly new_tokens: number;
  readonly seconds: number;
  readonly articles_per_second: number;
  readonly tokens_per_second: number;
}

/** One output line: feed the file to `kp-coord evaluate --pairs` when every row has a label. */
export interface PredictionRow {
  readonly id?: string;
  readonly prediction: string;
  readonly phrases: string[];
  readonly label?: string;
}

export function checkTokenizerFits(tokenizer: Tokenizer, tokenizerName: string, config: GenerationModel['config']): void {
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new KpCoordError(`tokenizer ${tokenizerName} has ${tokenizer.vocabSize} ids but the model's vocabulary has ${config.vocabSize}: not the model's tokenizer`);
  }
  if (tokenizer.eosId !== config.eosTokenId) {
    throw new KpCoordError(`tokenizer ${tokenizerName} has eos id ${tokenizer.eosId}, the model's config ${config.eosTokenId}: not the model's tokenizer`);
  }
}

export async function generateFile(o: GenerateFileOptions): Promise<GenerateFileReport> {
  const { tokenizer, model } = o;
  checkTokenizerFits(tokenizer, o.tokenizerName, model.config);
  if (o.maxInputTokens !== null && o.maxInputTokens < 1) throw new KpCoordError(`maxInputTokens must be at least 1, got ${o.maxInputTokens}`);
  const { rows } = o;
  let truncated = 0;
  const causal = model.modelType === 'gpt_neox';
  const promptTail = causal ? tokenizer.encode(causalTexts(o.rules, '', '')[0]) : [tokenizer.eosId];
  if (o.maxInputTokens !== null && o.maxInputTokens <= promptTail.length) throw new KpCoordError(`maxInputTokens ${o.maxInputTokens} leaves no room for the article (the prompt ends with ${promptTail.length} fixed tokens)`);
  const inputs = rows.map((row) => {
    if (!causal) {
      let ids = tokenizer.encode(row.inputText);
      if (o.maxInputTokens !== null && ids.length + 1 > o.maxInputTokens) {
        ids = ids.slice(0, o.maxInputTokens - 1);
        truncated++;
      }
      return Int32Array.from([...ids, tokenizer.eosId]);
    }
    const ids = tokenizer.encode(causalTexts(o.rules, row.inputText, '')[0]);
    if (o.maxInputTokens === null || ids.length <= o.maxInputTokens) return Int32Array.from(ids);
    truncated++;
    return Int32Array.from([...tokenizer.encode(row.inputText).slice(0, o.maxInputTokens - promptTail.length), ...promptTail]);
  });

  const started = performance.now();
  const generator = await createGenerator(model, o.engine ?? {});
  let outputs: number[][];
  try {
    outputs = await generator.generate(inputs, o.generate, o.onProgress);
  } finally {
    await generator.release();
  }
  const seconds = (performance.now() - started) / 1000;

  const lines = rows.map((row, i) => {
    // Ids past the tokenizer's range (a model vocabulary padded beyond it) decode to nothing, as in HF.
    const ids = idsBeforeEos(outputs[i]!, tokenizer.eosId).filter((id) => id < tokenizer.vocabSize);
    const text = tokenizer.decode(ids, { skipSpecialTokens: true });
    const prefixes = [o.rules.input_prefix, o.rules.target_prefix];
    const phrases = causal ? causalKeyphrases(text, { prefixes }, o.postprocess) : postprocessKeyphrases(text, o.postprocess);
    const out: PredictionRow = {
      ...(row.id !== null ? { id: row.id } : {}),
      prediction: phrases.join(PREDICTION_SEPARATOR),
      phrases,
      ...(row.label !== null ? { label: row.label } : {}),
    };
    return JSON.stringify(out);
  });
  await mkdir(dirname(o.out), { recursive: true });
  await writeBytesAtomically(o.out, `${lines.join('\n')}\n`);

  const newTokens = outputs.reduce((n, t) => n + t.length, 0);
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    out: o.out,
    rows: rows.length,
    rows_with_label: rows.filter((r) => r.label !== null).length,
    truncated_inputs: truncated,
    new_tokens: newTokens,
    seconds: round(seconds),
    articles_per_second: round(rows.length / seconds),
    tokens_per_second: round(newTokens / seconds),
  };
}
