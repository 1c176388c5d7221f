import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { InputFileError, KpCoordError } from '../errors.js';
import { checkReplaceable, checkWritableParent, mkdirParents, stagingPath } from '../out-dir.js';
import type { Logger } from '../log.js';
import { rngStream } from '../random.js';
import { withAddedTokens } from '../tokenizer/added-tokens.js';
import { tokenizerIdentity, type Tokenizer } from '../tokenizer/tokenizer.js';
import { InlineEncoder, type BatchEncoder, type EncodedBatch } from './batch-encoder.js';
import {
  CACHE_FORMAT,
  CACHE_FORMAT_VERSION,
  MANIFEST_FILE,
  REPORT_FILE,
  tokenDtypeFor,
  type CacheLayout,
  type CacheManifest,
  type PrefixTokens,
  type SplitManifest,
} from './cache-format.js';
import { RowCleaner, type DropRule, type TextExample } from './clean-rows.js';
import { DataRng, shuffleInPlace } from './data-rng.js';
import type { DataRules } from './data-rules.js';
import { lengthStats, type LengthStats } from './length-stats.js';
import { readSource } from './read-source.js';
import { describeBadLine, type BadLine } from './source-record.js';
import { toSourceRow } from './source-row.js';
import { TokenStore } from './token-store.js';
import { writeSplit, type SampleSource } from './write-cache.js';

// `kp-coord data prepare`: raw files -> rules -> tokens -> a cache folder that appears whole or not
// at all. Rows stream through (read, clean, tokenise in batches, filter by length) into two token
// stores; the split is drawn at the end, then each split is gathered into its files.

export interface PrepareOptions {
  /** Training files (JSONL, CSV or Parquet); also the eval split's source when `evalFiles` is empty. */
  readonly inputs: readonly string[];
  /** Explicit eval files; when given, `rules.eval_ratio` is not used. */
  readonly evalFiles?: readonly string[];
  /** The tokenizer as loaded from `tokenizerSpec` (without added prefix tokens: prepare adds them). */
  readonly tokenizer: Tokenizer;
  /** What a sample is for (default "seq2seq"); see [Note: cache layout]. */
  readonly layout?: CacheLayout;
  /** Causal layout: the prefixes as text (default) or as new tokens after the vocabulary (HF add_tokens). */
  readonly prefixTokens?: PrefixTokens;
  /** How the tokenizer was named (recorded in the manifest). */
  readonly tokenizerSpec: string;
  readonly rules: DataRules;
  readonly outDir: string;
  /** Bad lines tolerated (listed in the report); one more fails the run. */
  readonly skipBad?: number;
  /** Replace an existing `outDir` (only once the new one is complete). */
  readonly overwrite?: boolean;
  /** Encoder to tokenise with (default: inline on this thread); it must run `encodingTokenizer(...)`. */
  readonly encoder?: BatchEncoder;
  readonly log?: Logger;
}

export interface SourceReport {
  readonly path: string;
  readonly role: 'train' | 'eval';
  rows_read: number;
  bad_lines: number;
  kept: number;
}

export interface PrepareReport {
  readonly out_dir: string;
  readonly layout: CacheLayout;
  readonly tokenizer: CacheManifest['tokenizer'];
  readonly rules: DataRules;
  readonly sources: SourceReport[];
  readonly rows_read: number;
  readonly bad_lines: { readonly count: number; readonly allowed: number; readonly lines: BadLine[] };
  readonly dropped: Record<DropRule, number>;
  readonly keyphrase_cleaning: { readonly empty_removed: number; readonly duplicates_removed: number; readonly over_cap_removed: number };
  readonly kept: { readonly total: number; readonly train: number; readonly eval: number };
  readonly lengths: Record<string, { readonly input: LengthStats; readonly label: LengthStats }>;
  readonly seconds: number;
}

/** Texts tokenised per batch (input and target of 256 rows). */
const BATCH_ROWS = 256;
/** Batches in flight at once: enough to keep a pool's threads busy. */
const MAX_IN_FLIGHT = 8;

/**
 * The new tokens a causal cache with `prefixTokens` "added" puts after the vocabulary: the two
 * prefixes without their surrounding spaces (`generate keyphrases:`, `keyphrases generated:`).
 */
export function prefixAddedTokens(rules: DataRules, prefixTokens: PrefixTokens): string[] {
  if (prefixTokens === 'text') return [];
  return [rules.input_prefix.trim(), rules.target_prefix.trim()].filter((t) => t !== '');
}

/** The tokenizer prepare encodes with: `base`, plus the prefixes as added tokens when asked. */
export function encodingTokenizer(base: Tokenizer, rules: DataRules, layout: CacheLayout = 'seq2seq', prefixTokens: PrefixTokens = 'text'): Tokenizer {
  if (layout === 'seq2seq' && prefixTokens !== 'text') throw new KpCoordError('data prepare: prefix tokens "added" is for the causal layout (a seq2seq cache keeps its prefix as text)');
  return withAddedTokens(base, prefixAddedTokens(rules, prefixTokens));
}

/** A causal sample's two texts: the prompt ends at the target prefix's last non-space character. */
export function causalTexts(rules: Pick<DataRules, 'target_prefix'>, inputText: string, targetText: string): [prompt: string, completion: string] {
  const cut = rules.target_prefix.trimEnd();
  return [inputText + cut, rules.target_prefix.slice(cut.length) + targetText];
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

function checkInput(file: string): void {
  let st;
  try {
    st = statSync(file);
  } catch (err) {
    throw new InputFileError(file, '', 'no such file', { cause: err });
  }
  if (!st.isFile()) throw new InputFileError(file, '', 'not a file');
}

export async function prepareData(opts: PrepareOptions): Promise<PrepareReport> {
  const started = performance.now();
  const { tokenizer, rules, log } = opts;
  const outDir = resolve(opts.outDir);
  const skipBad = opts.skipBad ?? 0;
  const evalFiles = opts.evalFiles ?? [];
  if (opts.inputs.length === 0) throw new KpCoordError('data prepare: give at least one input file');
  const roles: Array<{ file: string; role: 'train' | 'eval' }> = [
    ...opts.inputs.map((file) => ({ file, role: 'train' as const })),
    ...evalFiles.map((file) => ({ file, role: 'eval' as const })),
  ];
  for (const { file } of roles) checkInput(file);
  if (existsSync(outDir) && !opts.overwrite) throw new KpCoordError(`${outDir} already exists; pass --overwrite to replace it`);
  // Before reading any input: --overwrite replaces only a data cache, and the folder must be writable.
  if (existsSync(outDir)) checkReplaceable(outDir, 'a kp-coord data cache', isDataCache);
  checkWritableParent(outDir);

  const layout = opts.layout ?? 'seq2seq';
  const prefixTokens = opts.prefixTokens ?? 'text';
  const causal = layout === 'causal';
  if (!causal && rules.max_sequence_tokens !== null) {
    throw new KpCoordError('data prepare: max_sequence_tokens limits a causal sequence; a seq2seq cache uses max_input_tokens and max_target_tokens');
  }
  const encoding = encodingTokenizer(tokenizer, rules, layout, prefixTokens);
  const dtype = tokenDtypeFor(encoding.vocabSize);
  const inputs = new TokenStore(dtype, encoding.vocabSize);
  const labels = new TokenStore(dtype, encoding.vocabSize);
  const sources: SampleSource[] = [];
  const sampleRole: Array<'train' | 'eval'> = [];
  const cleaner = new RowCleaner(rules);
  const badLines: BadLine[] = [];
  const encoder = opts.encoder ?? new InlineEncoder(encoding);
  const eos = tokenizer.eosId;

  // Lengths as stored: seq2seq input and target each with its eos; causal prompt (no eos) and
  // completion with its eos, whose sum is the model's sequence.
  const lengthRule = (inLen: number, tgtLen: number): DropRule | undefined => {
    if (rules.min_input_tokens !== null && inLen < rules.min_input_tokens) return 'input_too_short';
    if (rules.max_input_tokens !== null && inLen >= rules.max_input_tokens) return 'input_too_long';
    if (rules.max_target_tokens !== null && tgtLen >= rules.max_target_tokens) return 'target_too_long';
    if (rules.max_sequence_tokens !== null && inLen + tgtLen >= rules.max_sequence_tokens) return 'sequence_too_long';
    return undefined;
  };

  // Batches of cleaned rows go to the encoder; results are taken in submission order.
  type Batch = { examples: TextExample[]; role: 'train' | 'eval'; report: SourceReport; result: Promise<EncodedBatch> };
  const inFlight: Batch[] = [];
  const takeOne = async (): Promise<void> => {
    const b = inFlight.shift()!;
    const { ids, offsets } = await b.result;
    for (let k = 0; k < b.examples.length; k++) {
      const inIds = ids.subarray(offsets[2 * k]!, offsets[2 * k + 1]!);
      const tgtIds = ids.subarray(offsets[2 * k + 1]!, offsets[2 * k + 2]!);
      const rule = lengthRule(inIds.length + (causal ? 0 : 1), tgtIds.length + 1);
      if (rule !== undefined) {
        cleaner.drop(rule);
        continue;
      }
      inputs.append(inIds, causal ? undefined : eos);
      labels.append(tgtIds, eos);
      const ex = b.examples[k]!;
      sources.push({ id: ex.id, file: ex.file, line: ex.line });
      sampleRole.push(b.role);
      b.report.kept++;
    }
  };
  const submit = async (examples: TextExample[], role: 'train' | 'eval', report: SourceReport): Promise<void> => {
    const texts: string[] = [];
    for (const ex of examples) {
      if (causal) texts.push(...causalTexts(rules, ex.inputText, ex.targetText));
      else texts.push(ex.inputText, ex.targetText);
    }
    inFlight.push({ examples, role, report, result: encoder.encode(texts) });
    while (inFlight.length > MAX_IN_FLIGHT) await takeOne();
  };

  const sourceReports: SourceReport[] = [];
  try {
    for (const { file, role } of roles) {
      const report: SourceReport = { path: file, role, rows_read: 0, bad_lines: 0, kept: 0 };
      sourceReports.push(report);
      let batch: TextExample[] = [];
      const onBad = (bad: BadLine): void => {
        report.bad_lines++;
        badLines.push(bad);
        if (badLines.length > skipBad) {
          const more = skipBad > 0 ? ` (more than --skip-bad ${skipBad} bad lines)` : '';
          throw new InputFileError(bad.file, String(bad.line), `${bad.field ? `field ${bad.field}: ` : ''}${bad.reason}${more}`);
        }
        log?.warn({ file: bad.file, line: bad.line }, `skipping bad line: ${describeBadLine(bad)}`);
      };
      for await (const item of readSource(file)) {
        if (!item.ok) {
          onBad(item.bad);
          continue;
        }
        report.rows_read++;
        const row = toSourceRow(item.record);
        if (!row.ok) {
          onBad(row.bad);
          continue;
        }
        const cleaned = cleaner.clean(row.row);
        if (!cleaned.ok) continue;
        batch.push(cleaned.example);
        if (batch.length >= BATCH_ROWS) {
          await submit(batch, role, report);
          batch = [];
        }
      }
      if (report.rows_read === 0 && report.bad_lines === 0) throw new InputFileError(file, '', 'the file is empty (no rows)');
      if (batch.length > 0) await submit(batch, role, report);
      log?.info({ file, rows: report.rows_read }, 'read');
    }
    while (inFlight.length > 0) await takeOne();
  } finally {
    // Let any batches still in flight settle before the encoder goes away.
    await Promise.allSettled(inFlight.map((b) => b.result));
    if (opts.encoder === undefined) await encoder.close();
  }

  // The split: explicit eval files, or a seeded share of the kept rows.
  const trainOrder: number[] = [];
  const evalOrder: number[] = [];
  for (let i = 0; i < sampleRole.length; i++) (sampleRole[i] === 'eval' ? evalOrder : trainOrder).push(i);
  if (evalFiles.length === 0 && rules.eval_ratio > 0 && trainOrder.length > 0) {
    // Like sklearn/HF train_test_split: ceil(ratio * n) eval rows, drawn by a seeded shuffle.
    const nEval = Math.ceil(rules.eval_ratio * trainOrder.length);
    const perm = trainOrder.slice();
    shuffleInPlace(perm, rngStream(rules.split_seed, DataRng.split));
    const chosen = new Set(perm.slice(0, nEval));
    trainOrder.length = 0;
    for (let i = 0; i < sampleRole.length; i++) (chosen.has(i) ? evalOrder : trainOrder).push(i);
  }
  if (trainOrder.length === 0) {
    // Named by its input files: the run as a whole failed, not one line.
    throw new KpCoordError(
      `${opts.inputs.join(', ')}: data prepare kept no training rows (read ${sourceReports.reduce((s, r) => s + r.rows_read, 0)} rows, ${badLines.length} bad lines skipped; dropped ${JSON.stringify(cleaner.dropped)})`,
    );
  }

  const identity = { spec: opts.tokenizerSpec, ...tokenizerIdentity(tokenizer) };
  const tmp = stagingPath(outDir);
  mkdirParents(dirname(tmp));
  try {
    mkdirSync(tmp);
    const splits: { train: SplitManifest; eval?: SplitManifest } = { train: writeSplit(tmp, 'train', inputs, labels, sources, trainOrder) };
    if (evalOrder.length > 0) splits.eval = writeSplit(tmp, 'eval', inputs, labels, sources, evalOrder);
    const lengths: PrepareReport['lengths'] = {};
    for (const [name, order] of [['train', trainOrder], ['eval', evalOrder]] as const) {
      if (order.length === 0) continue;
      lengths[name] = {
        input: lengthStats(order.map((i) => inputs.length(i))),
        label: lengthStats(order.map((i) => labels.length(i))),
      };
    }
    const sourceEntries = await Promise.all(
      roles.map(async ({ file, role }) => ({ path: resolve(file), role, bytes: statSync(file).size, sha256: await sha256File(file) })),
    );
    const rowsRead = sourceReports.reduce((s, r) => s + r.rows_read, 0);
    const report: PrepareReport = {
      out_dir: outDir,
      layout,
      tokenizer: identity,
      rules,
      sources: sourceReports,
      rows_read: rowsRead,
      bad_lines: { count: badLines.length, allowed: skipBad, lines: badLines },
      dropped: cleaner.dropped,
      keyphrase_cleaning: {
        empty_removed: cleaner.phrases.empty,
        duplicates_removed: cleaner.phrases.duplicate,
        over_cap_removed: cleaner.phrases.overCap,
      },
      kept: { total: trainOrder.length + evalOrder.length, train: trainOrder.length, eval: evalOrder.length },
      lengths,
      seconds: Math.round((performance.now() - started) / 10) / 100,
    };
    const manifest: CacheManifest = {
      format: CACHE_FORMAT,
      format_version: CACHE_FORMAT_VERSION,
      layout,
      ...(causal
        ? {
            causal: {
              prefix_tokens: prefixTokens,
              added_tokens: prefixAddedTokens(rules, prefixTokens).map((content, k) => ({ content, id: tokenizer.vocabSize + k })),
              vocab_size: encoding.vocabSize,
            },
          }
        : {}),
      created_at: new Date().toISOString(),
      tokenizer: identity,
      token_dtype: dtype,
      rules,
      sources: sourceEntries,
      counts: { rows_read: rowsRead, bad_lines: badLines.length, kept: report.kept.total },
      splits,
    };
    writeFileSync(join(tmp, REPORT_FILE), `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(join(tmp, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    publish(tmp, outDir, opts.overwrite ?? false);
    log?.info({ out: outDir, train: report.kept.train, eval: report.kept.eval, seconds: report.seconds }, 'data cache written');
    return report;
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Move the finished folder into place by rename; an old one is moved aside first and removed after. */
function publish(tmp: string, outDir: string, overwrite: boolean): void {
  if (!existsSync(outDir)) {
    renameSync(tmp, outDir);
    return;
  }
  if (!overwrite) throw new KpCoordError(`${outDir} appeared while preparing; not replacing it without --overwrite`);
  const old = `${outDir}.old-${randomBytes(4).toString('hex')}`;
  renameSync(outDir, old);
  renameSync(tmp, outDir);
  rmSync(old, { recursive: true, force: true });
}

/** Whether `dir` holds a kp-coord data cache (its manifest names the format). */
function isDataCache(dir: string): boolean {
  try {
    const m = JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8')) as { format?: unknown };
    return m.format === CACHE_FORMAT;
  } catch {
    return false;
  }
}
