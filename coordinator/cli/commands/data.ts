import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { Argv } from 'yargs';
import { InputFileError } from '../../../shared/errors.js';
import { rootLogger } from '../../../shared/log.js';
import { WorkerPoolEncoder, type BatchEncoder } from '../../../shared/data/batch-encoder.js';
import { CACHE_LAYOUTS, cacheLayout, PREFIX_TOKENS } from '../../../shared/data/cache-format.js';
import { openDataCache } from '../../../shared/data/data-cache.js';
import { DataRules, resolveRules, rulePresetNames } from '../../../shared/data/data-rules.js';
import { encodingTokenizer, prefixAddedTokens, prepareData, type PrepareReport } from '../../../shared/data/prepare.js';
import { withAddedTokens } from '../../../shared/tokenizer/added-tokens.js';
import { writeSyntheticSet } from '../../../shared/data/synth.js';
import { BUILTIN_TOKENIZER, loadTokenizer } from '../../../shared/tokenizer/load-tokenizer.js';

// `kp-coord data prepare | synth | inspect`: build the tokenised cache workers train from, make a
// synthetic V4-shaped set for scale tests, and show what a cache holds.

const log = rootLogger.child({ cmd: 'data' });

type RuleKey = keyof DataRules;
type FlagKind = 'boolean' | 'number' | 'string' | 'limit';

// One flag per rule (kebab-case of the rule's name); absent flags leave the preset's value.
const RULE_FLAGS: ReadonlyArray<{ key: RuleKey; kind: FlagKind; describe: string }> = [
  { key: 'drop_missing', kind: 'boolean', describe: 'Drop rows with a missing or "None" title/body/label' },
  { key: 'drop_duplicate_titles', kind: 'boolean', describe: 'Drop rows whose title was seen before (first kept)' },
  { key: 'normalize_whitespace', kind: 'boolean', describe: 'Newlines to spaces, whitespace runs collapsed' },
  { key: 'korean_only', kind: 'boolean', describe: 'Keep rows whose letters are mostly Hangul' },
  { key: 'min_hangul_share', kind: 'number', describe: 'Hangul share of letters the Korean filter needs (0..1)' },
  { key: 'keyphrase_separator', kind: 'string', describe: 'Separator of a keyphrase string (V1/V2 files: ",")' },
  { key: 'clean_keyphrases', kind: 'boolean', describe: 'Trim, strip punctuation at the ends, drop empty and repeated phrases' },
  { key: 'max_keyphrases', kind: 'limit', describe: 'Keep the first N phrases of a label ("none": all)' },
  { key: 'input_prefix', kind: 'string', describe: 'Text put before every input' },
  { key: 'target_separator', kind: 'string', describe: 'Joins phrases into the target' },
  { key: 'target_prefix', kind: 'string', describe: 'Causal layout: text between the article and the keyphrases' },
  { key: 'min_input_tokens', kind: 'limit', describe: 'Drop inputs shorter than this, eos included ("none": off)' },
  { key: 'max_input_tokens', kind: 'limit', describe: 'Drop inputs of this many tokens or more ("none": off)' },
  { key: 'max_target_tokens', kind: 'limit', describe: 'Drop targets of this many tokens or more ("none": off)' },
  { key: 'max_sequence_tokens', kind: 'limit', describe: 'Causal layout: drop rows whose whole sequence (prompt + keyphrases + eos) has this many tokens or more ("none": off)' },
  { key: 'eval_ratio', kind: 'number', describe: 'Share of kept rows for eval when no --eval-file is given' },
  { key: 'split_seed', kind: 'number', describe: 'Seed of the eval draw' },
];

const flagName = (key: string): string => key.replace(/_/gu, '-');

function parseLimit(flag: string, v: string): number | null {
  if (v === 'none' || v === 'null') return null;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InputFileError(`--${flag}`, '', `expected a non-negative integer or "none", got "${v}"`);
  return n;
}

function readRulesFile(file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = parseYaml(readFileSync(file, 'utf8')); // YAML is a superset of JSON: one reader for both.
  } catch (err) {
    throw new InputFileError(file, '', `cannot read the rules file: ${(err as Error).message}`, { cause: err });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new InputFileError(file, '', 'the rules file must hold a mapping of rule names to values');
  return value as Record<string, unknown>;
}

function printSummary(r: PrepareReport): void {
  const dropped = Object.entries(r.dropped)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const lines = [
    `read ${r.rows_read} rows from ${r.sources.length} file(s); bad lines ${r.bad_lines.count} (allowed ${r.bad_lines.allowed})`,
    `dropped: ${dropped}`,
    `kept: train ${r.kept.train}, eval ${r.kept.eval}`,
    ...Object.entries(r.lengths).map(
      ([split, s]) => `${split} tokens: input mean ${s.input.mean} (p5 ${s.input.p5}, p50 ${s.input.p50}, p95 ${s.input.p95}, max ${s.input.max}); label mean ${s.label.mean} (max ${s.label.max})`,
    ),
    `wrote ${r.out_dir} in ${r.seconds} s (manifest.json, report.json)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

function registerPrepare(cli: Argv): Argv {
  return cli.command(
    'prepare',
    'Clean, tokenise and split raw JSONL, CSV or Parquet into the cache workers read',
    (y) => {
      let c = y
        .option('input', { type: 'string', array: true, demandOption: true, describe: 'Training file(s): .jsonl, .csv or .parquet' })
        .option('eval-file', { type: 'string', array: true, describe: 'Eval file(s); without them --eval-ratio of the kept rows is drawn' })
        .option('tokenizer', { type: 'string', default: BUILTIN_TOKENIZER, describe: 'tokenizer.json, a folder holding one, or "builtin" (bytes)' })
        .option('out', { type: 'string', demandOption: true, describe: 'Cache folder to write (appears complete or not at all)' })
        .option('layout', { type: 'string', choices: CACHE_LAYOUTS, default: 'seq2seq', describe: 'seq2seq (T5: input and labels) or causal (decoder-only, e.g. GPT-NeoX: prompt + keyphrases + eos as one sequence)' })
        .option('prefix-tokens', { type: 'string', choices: PREFIX_TOKENS, default: 'text', describe: 'Causal: the prefixes as text, or as new tokens after the vocabulary (HF add_tokens; the manifest records their ids)' })
        .option('preset', { type: 'string', choices: rulePresetNames(), default: 'v4', describe: 'Rule set to start from' })
        .option('rules', { type: 'string', describe: 'YAML/JSON file of rules (snake_case names) applied over the preset' })
        .option('skip-bad', { type: 'number', default: 0, describe: 'Tolerate up to N malformed lines (listed in report.json)' })
        .option('overwrite', { type: 'boolean', default: false, describe: 'Replace an existing --out folder' })
        .option('threads', { type: 'number', describe: 'Tokeniser threads (default: 1 for builtin, up to 4 cores otherwise)' });
      for (const f of RULE_FLAGS) {
        const type = f.kind === 'limit' ? 'string' : f.kind;
        c = c.option(flagName(f.key), { type, describe: f.describe, group: 'Rules (override the preset):' });
      }
      return c
        .check((a) => {
          if (!Number.isInteger(a['skip-bad']) || a['skip-bad'] < 0) return '--skip-bad must be a non-negative integer.';
          if (a.threads !== undefined && (!Number.isInteger(a.threads) || a.threads < 1)) return '--threads must be a positive integer.';
          return true;
        })
        .example('$0 data prepare --input v4-train.jsonl --eval-file v4-eval.jsonl --tokenizer pko-t5-base/ --out data/v4', 'the V4 recipe')
        .example('$0 data prepare --input seed-v2.jsonl --keyphrase-separator , --out data/v2', 'V2 labels are comma-separated')
        .example('$0 data prepare --input v4-train.jsonl --tokenizer polyglot-ko/ --layout causal --prefix-tokens added --min-input-tokens none --max-sequence-tokens 2048 --out data/v4-causal', 'GPT-NeoX, prefixes as new tokens')
        .example('$0 data prepare --input shared/datasets/ko-news-sample.jsonl --preset embedded-sample --out data/sample', 'the shipped sample with bytes');
    },
    async (a) => {
      const flags: Record<string, unknown> = {};
      for (const f of RULE_FLAGS) {
        const v = a[flagName(f.key)];
        if (v === undefined) continue;
        flags[f.key] = f.kind === 'limit' ? parseLimit(flagName(f.key), String(v)) : v;
      }
      const overrides = a.rules !== undefined ? [readRulesFile(a.rules), flags] : [flags];
      const rules = resolveRules(a.preset, overrides, a.rules ?? 'command-line rules');
      const spec = a.tokenizer === BUILTIN_TOKENIZER ? a.tokenizer : resolve(a.tokenizer);
      const tokenizer = loadTokenizer(spec);
      const layout = a.layout as (typeof CACHE_LAYOUTS)[number];
      const prefixTokens = a['prefix-tokens'] as (typeof PREFIX_TOKENS)[number];
      const encoding = encodingTokenizer(tokenizer, rules, layout, prefixTokens);
      const threads = a.threads ?? (tokenizer.kind === 'byte' ? 1 : Math.min(4, availableParallelism()));
      let encoder: BatchEncoder | undefined;
      if (threads > 1) encoder = await WorkerPoolEncoder.start(spec, encoding.fingerprint, threads, prefixAddedTokens(rules, prefixTokens));
      try {
        const report = await prepareData({
          inputs: a.input,
          evalFiles: a['eval-file'] ?? [],
          tokenizer,
          tokenizerSpec: spec,
          layout,
          prefixTokens,
          rules,
          outDir: a.out,
          skipBad: a['skip-bad'],
          overwrite: a.overwrite,
          ...(encoder ? { encoder } : {}),
          log,
        });
        printSummary(report);
      } finally {
        await encoder?.close();
      }
    },
  );
}

function registerSynth(cli: Argv): Argv {
  return cli.command(
    'synth',
    'Write a synthetic V4-shaped set (Korean-looking text, not real news) for scale tests',
    (y) =>
      y
        .option('out', { type: 'string', demandOption: true, describe: 'Training JSONL to write' })
        .option('eval-out', { type: 'string', describe: 'Eval JSONL to write (default: OUT with ".eval" before the extension)' })
        .option('train', { type: 'number', default: 76472, describe: 'Training rows' })
        .option('eval', { type: 'number', default: 3000, describe: 'Eval rows' })
        .option('seed', { type: 'number', default: 0, describe: 'Same seed, same files' })
        .option('tokenizer', { type: 'string', default: BUILTIN_TOKENIZER, describe: 'Tokenizer whose tokens the input lengths (500-999, mean ~725) are measured in' })
        .check((a) => {
          for (const k of ['train', 'eval', 'seed'] as const) {
            if (!Number.isSafeInteger(a[k]) || a[k] < 0) return `--${k} must be a non-negative integer.`;
          }
          return true;
        })
        .example('$0 data synth --out /tmp/synth.jsonl --train 76472 --eval 3000 --seed 1', 'V4-sized, byte-token lengths'),
    async (a) => {
      const spec = a.tokenizer === BUILTIN_TOKENIZER ? a.tokenizer : resolve(a.tokenizer);
      const r = await writeSyntheticSet({
        trainOut: a.out,
        evalOut: a['eval-out'] ?? a.out.replace(/(\.[^./]+)?$/u, '.eval$1'),
        train: a.train,
        eval: a.eval,
        seed: a.seed,
        tokenizer: loadTokenizer(spec),
      });
      process.stdout.write(`${JSON.stringify(r)}\n`);
    },
  );
}

function registerInspect(cli: Argv): Argv {
  return cli.command(
    'inspect <dir>',
    'Check a prepared cache (manifest, sizes, checksums) and print its manifest counts',
    (y) =>
      y
        .positional('dir', { type: 'string', demandOption: true, describe: 'Cache folder' })
        .option('samples', { type: 'number', default: 0, describe: 'Also decode the first N training samples' })
        .option('tokenizer', { type: 'string', describe: 'Tokenizer to decode with and to check the fingerprint against' }),
    (a) => {
      const base = a.tokenizer !== undefined ? loadTokenizer(a.tokenizer === BUILTIN_TOKENIZER ? a.tokenizer : resolve(a.tokenizer)) : undefined;
      const cache = openDataCache(a.dir, { verifyChecksums: true, ...(base ? { tokenizerFingerprint: base.fingerprint } : {}) });
      const m = cache.manifest;
      const tokenizer = base && withAddedTokens(base, (m.causal?.added_tokens ?? []).map((t) => t.content));
      const out: Record<string, unknown> = {
        layout: cacheLayout(m),
        ...(m.causal ? { causal: m.causal } : {}),
        tokenizer: m.tokenizer,
        token_dtype: m.token_dtype,
        counts: m.counts,
        splits: { train: m.splits.train.size, eval: m.splits.eval?.size ?? 0 },
      };
      if (tokenizer && a.samples > 0) {
        const n = Math.min(a.samples, cache.train.size);
        out.samples = Array.from({ length: n }, (_, i) => ({
          source: cache.train.source(i),
          input: tokenizer.decode(cache.train.inputIds(i), { skipSpecialTokens: true }),
          target: tokenizer.decode(cache.train.labelIds(i), { skipSpecialTokens: true }),
        }));
      }
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    },
  );
}

export function registerData(cli: Argv): Argv {
  return cli.command(
    'data',
    'Data: prepare the tokenised cache, synthesise a test set, inspect a cache',
    (y) => registerInspect(registerSynth(registerPrepare(y))).demandCommand(1, 'Name a data subcommand; see kp-coord data --help.'),
    () => {
      // Never reached: demandCommand requires a subcommand.
    },
  );
}
