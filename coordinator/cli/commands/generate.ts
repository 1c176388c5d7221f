import { resolve } from 'node:path';
import type { Argv } from 'yargs';
import { CacheManifest, MANIFEST_FILE } from '../../../shared/data/cache-format.js';
import { loadCacheTokenizer } from '../../../shared/data/data-cache.js';
import { resolveRules, rulePresetNames, type DataRules } from '../../../shared/data/data-rules.js';
import { generateFile } from '../../../shared/generate/generate-file.js';
import { readGenerationRows } from '../../../shared/generate/generation-rows.js';
import { GenerateOptionsSchema, parseGenerateOptions, type GenerateOptions } from '../../../shared/generate/generate-options.js';
import { DEFAULT_POSTPROCESS, type PostprocessOptions } from '../../../shared/generate/keyphrase-postprocess.js';
import { loadGenerationModel } from '../../../shared/generate/load-generation-model.js';
import { ProgressLine } from '../../../shared/generate/progress-line.js';
import { readJsonFile } from '../../../shared/json-file.js';
import { rootLogger } from '../../../shared/log.js';
import { BUILTIN_TOKENIZER, loadTokenizer } from '../../../shared/tokenizer/load-tokenizer.js';
import { parseInput } from '../../../shared/zod-issues.js';

// `kp-coord generate`: keyphrases for a file of articles from an HF model directory (T5 or
// GPT-NeoX), a kp-coord checkpoint, a LoRA run's adapter folder or a preset (random weights), with
// the training data's prefixes, text rules and tokenizer; greedy or beam search with a key/value
// cache; each post-processing step switchable.

const log = rootLogger.child({ command: 'generate' });

interface GenerateArgs {
  readonly 'num-beams': number;
  readonly 'max-new-tokens': number;
  readonly 'min-new-tokens': number;
  readonly 'no-repeat-ngram-size': number;
  readonly 'length-penalty': number;
  readonly 'early-stopping': string;
  readonly 'batch-size': number;
  readonly 'no-cache': boolean;
  readonly 'max-input-tokens'?: number;
  readonly 'top-k'?: number;
  readonly threads: number;
  readonly seed: number;
}

/** The decoding options the arguments give, or what is wrong with them (a usage error). */
function decodingOf(a: GenerateArgs): GenerateOptions | string {
  const earlyStopping = a['early-stopping'] === 'never' ? 'never' : a['early-stopping'] === 'true';
  const parsed = GenerateOptionsSchema.safeParse({
    numBeams: a['num-beams'],
    maxNewTokens: a['max-new-tokens'],
    minNewTokens: a['min-new-tokens'],
    noRepeatNgramSize: a['no-repeat-ngram-size'],
    lengthPenalty: a['length-penalty'],
    earlyStopping,
    useCache: !a['no-cache'],
    batchSize: a['batch-size'],
  });
  if (!parsed.success) {
    const flag: Record<string, string> = { numBeams: '--num-beams', maxNewTokens: '--max-new-tokens', minNewTokens: '--min-new-tokens', noRepeatNgramSize: '--no-repeat-ngram-size', lengthPenalty: '--length-penalty', batchSize: '--batch-size' };
    return parsed.error.issues.map((i) => `${flag[String(i.path[0])] ?? String(i.path[0])}: ${i.message}`).join('; ');
  }
  try {
    return parseGenerateOptions(parsed.data);
  } catch (err) {
    return (err as Error).message;
  }
}

function positiveOrAbsent(name: string, v: number | undefined): string | null {
  return v === undefined || (Number.isSafeInteger(v) && v >= 1) ? null : `--${name} must be a positive integer, got ${v}`;
}

/** Rules: --data-cache's (what training used), else the preset; --input-prefix overrides either. */
function rulesOf(preset: string, dataCache: string | undefined, inputPrefix: string | undefined): { rules: DataRules; tokenizerSpec: string | null; manifest: CacheManifest | null } {
  const overrides: Record<string, unknown>[] = [];
  let tokenizerSpec: string | null = null;
  let manifest: CacheManifest | null = null;
  if (dataCache !== undefined) {
    const path = resolve(dataCache, MANIFEST_FILE);
    manifest = parseInput(CacheManifest, readJsonFile(path, 'data cache manifest'), path, 'data cache manifest');
    overrides.push(manifest.rules);
    tokenizerSpec = manifest.tokenizer.spec;
  }
  if (inputPrefix !== undefined) overrides.push({ input_prefix: inputPrefix });
  return { rules: resolveRules(preset, overrides, dataCache ?? '--input-prefix'), tokenizerSpec, manifest };
}

export function registerGenerate(cli: Argv): Argv {
  return cli.command(
    'generate',
    'Generate keyphrases for articles (greedy or beam search with a key/value cache)',
    (y) =>
      y
        // HF's `--no-repeat-ngram-size N` would read as the negation of a flag `repeat-ngram-size`:
        // this command spells its switches `--no-*` explicitly instead.
        .parserConfiguration({ 'boolean-negation': false })
        .option('model', { type: 'string', demandOption: true, describe: 'HF model directory (T5, GPT-NeoX or BART), kp-coord checkpoint directory, a LoRA run\'s final (PEFT adapter) folder, or preset:<name> (random weights)' })
        .option('input', { type: 'string', demandOption: true, describe: 'Articles: .jsonl, .csv or .parquet (title+body, title_content or input_text; id and keyphrases kept)' })
        .option('out', { type: 'string', demandOption: true, describe: 'JSONL to write: {id, prediction, phrases, label}, written atomically' })
        .option('num-beams', { type: 'number', default: 1, describe: '1: greedy search; more: beam search', group: 'Decoding:' })
        .option('no-repeat-ngram-size', { type: 'number', default: 0, describe: 'Forbid repeating any n-gram of this size (0: off)', group: 'Decoding:' })
        .option('max-new-tokens', { type: 'number', default: 64, describe: 'Tokens generated at most (eos included)', group: 'Decoding:' })
        .option('min-new-tokens', { type: 'number', default: 0, describe: 'Forbid eos before this many tokens', group: 'Decoding:' })
        .option('length-penalty', { type: 'number', default: 1, describe: 'Beam score = sum log p / length^this', group: 'Decoding:' })
        .option('early-stopping', { choices: ['false', 'true', 'never'], default: 'false', describe: "Beam search stopping rule (HF's early_stopping)", group: 'Decoding:' })
        .option('batch-size', { type: 'number', default: 8, describe: 'Articles decoded together', group: 'Decoding:' })
        .option('no-cache', { type: 'boolean', default: false, describe: 'Decode without the key/value cache (the decoder re-run over the prefix each step)', group: 'Decoding:' })
        .option('tokenizer', { type: 'string', describe: `tokenizer.json, a folder holding one, or "${BUILTIN_TOKENIZER}" (default: the data cache's, the model folder's, else builtin)`, group: 'Input:' })
        .option('data-cache', { type: 'string', describe: 'A data cache made by `data prepare`: use its text rules and tokenizer', group: 'Input:' })
        .option('preset', { choices: rulePresetNames(), default: 'v4', describe: 'Text rules preset (input prefix, whitespace)', group: 'Input:' })
        .option('input-prefix', { type: 'string', describe: "Text put before every input (default: the rules', 'generate keyphrases: ')", group: 'Input:' })
        .option('max-input-tokens', { type: 'number', describe: 'Truncate inputs to N tokens, eos included; GPT-NeoX: the prompt, its target prefix kept (default: no limit)', group: 'Input:' })
        .option('separator', { type: 'string', default: DEFAULT_POSTPROCESS.separator, describe: 'What the output is split into phrases on', group: 'Post-processing:' })
        .option('no-split', { type: 'boolean', default: false, describe: 'Keep the output as one phrase', group: 'Post-processing:' })
        .option('no-trim', { type: 'boolean', default: false, describe: 'Keep whitespace around phrases', group: 'Post-processing:' })
        .option('no-drop-empty', { type: 'boolean', default: false, describe: 'Keep empty phrases', group: 'Post-processing:' })
        .option('no-drop-urls', { type: 'boolean', default: false, describe: 'Keep phrases holding a URL', group: 'Post-processing:' })
        .option('no-dedupe', { type: 'boolean', default: false, describe: 'Keep repeated phrases', group: 'Post-processing:' })
        .option('top-k', { type: 'number', describe: 'Keep the first K phrases (default: all)', group: 'Post-processing:' })
        .option('threads', { type: 'number', default: 2, describe: 'onnxruntime intra-op threads' })
        .option('seed', { type: 'number', default: 0, describe: 'Initialisation seed for preset:<name> models' })
        .option('no-progress', { type: 'boolean', default: false, describe: 'No progress bar on stderr' })
        .example('$0 generate --model hf_model/ --input eval.jsonl --out pred.jsonl --num-beams 5 --no-repeat-ngram-size 3', '')
        .example('$0 generate --model runs/kp/checkpoint-55 --data-cache data/v4 --input eval.jsonl --out pred.jsonl && $0 evaluate --pairs pred.jsonl', ''),
    async (a) => {
      // Checked here rather than in .check() (see evaluate.ts): usage mistakes exit 2.
      const decoding = decodingOf(a);
      const usage = [
        typeof decoding === 'string' ? decoding : null,
        positiveOrAbsent('max-input-tokens', a['max-input-tokens']),
        positiveOrAbsent('top-k', a['top-k']),
        positiveOrAbsent('threads', a.threads),
        Number.isSafeInteger(a.seed) ? null : `--seed must be an integer, got ${a.seed}`,
        a.separator === '' ? '--separator must not be empty' : null,
      ].filter((m): m is string => m !== null);
      if (usage.length > 0 || typeof decoding === 'string') {
        process.stderr.write(`kp-coord generate: ${usage.join('; ')}\nSee kp-coord generate --help.\n`);
        process.exitCode = 2;
        return;
      }
      const { rules, tokenizerSpec: cacheTokenizer, manifest } = rulesOf(a.preset, a['data-cache'], a['input-prefix']);
      // Every row is read and checked before the (possibly large) model is loaded.
      const rows = await readGenerationRows(a.input, rules);
      const model = await loadGenerationModel(a.model, { initSeed: a.seed });
      const tokenizerName = a.tokenizer ?? cacheTokenizer ?? model.tokenizerDir ?? BUILTIN_TOKENIZER;
      // A causal cache may have added its prefixes as tokens: the cache's tokenizer carries them.
      const tokenizer = a.tokenizer === undefined && manifest?.causal ? loadCacheTokenizer(manifest) : loadTokenizer(tokenizerName);
      const postprocess: PostprocessOptions = {
        split: !a['no-split'],
        separator: a.separator,
        trim: !a['no-trim'],
        dropEmpty: !a['no-drop-empty'],
        dropUrls: !a['no-drop-urls'],
        dedupe: !a['no-dedupe'],
        topK: a['top-k'] ?? null,
      };
      log.info({ model: a.model, kind: model.kind, tokenizer: tokenizerName, num_beams: decoding.numBeams, input_prefix: rules.input_prefix }, 'generating');
      const bar = a['no-progress'] ? null : new ProgressLine(process.stderr);
      const report = await generateFile({
        model,
        tokenizer,
        tokenizerName,
        rows,
        out: a.out,
        generate: decoding,
        postprocess,
        rules,
        maxInputTokens: a['max-input-tokens'] ?? null,
        engine: { intraOpThreads: a.threads },
        ...(bar ? { onProgress: (p) => bar.update(p.done, p.total, p.tokens) } : {}),
      });
      process.stdout.write(`${JSON.stringify(report)}\n`);
    },
  );
}
