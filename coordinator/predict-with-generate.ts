import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { loadCacheTokenizer, openDataCache } from '../shared/data/data-cache.js';
import { KpCoordError } from '../shared/errors.js';
import { causalCompletionText, causalKeyphrases, postprocessKeyphrases, PREDICTION_SEPARATOR } from '../shared/generate/keyphrase-postprocess.js';
import type { Logger } from '../shared/log.js';
import { loadInputs } from '../shared/metrics/eval-inputs.js';
import { evaluate } from '../shared/metrics/evaluation.js';
import { splitPhrases } from '../shared/metrics/keyphrase-list.js';
import { listStats } from '../shared/metrics/list-stats.js';
import { renderMarkdown } from '../shared/metrics/report.js';
import { percent4 } from '../shared/metrics/round.js';
import { writeReportFiles } from '../shared/metrics/write-report-files.js';
import type { TrainPlan } from '../shared/plan/train-plan.js';
import { loadTokenizer } from '../shared/tokenizer/load-tokenizer.js';
import { writeBytesAtomically } from '../shared/weights/atomic-file.js';
import { parseInput } from '../shared/zod-issues.js';
import { ReportKind } from '../proto/gen/control/control.js';
import { GeneratedShareSchema } from '../worker/generate-share.js';
import type { ControlServer } from './control-server.js';
import type { RunEventListener } from './run-events.js';

// predict_with_generate (Seq2SeqTrainer's): once the final model is saved, the workers decode the
// eval split with it, each its share (T5: the encoder inputs; GPT-NeoX: the prompts, see
// causal-generator.ts); the coordinator merges the ids in eval order, turns them
// into keyphrase lists (the default post-processing of `kp-coord generate`), writes the pairs as
// `kp-coord evaluate` reads them, and scores them with the same code:
//   OUTPUT_DIR/eval_predictions.jsonl   {id, label, prediction, raw, source} per eval sample
//   OUTPUT_DIR/eval_generate.json/.md   the full evaluation report
// so `kp-coord evaluate --pairs F --source F` on the predictions file reproduces the numbers.

export interface GenerateSummary {
  readonly predictions_file: string;
  readonly report_file: string;
  readonly documents: number;
  readonly settings: NonNullable<TrainPlan['generate']>;
  /** Headline scores (percentages, 4 places): the team's, the field's F1 (mean per document), ROUGE. */
  readonly metrics: Readonly<Record<string, number>>;
  readonly seconds: number;
}

export async function predictWithGenerate(server: ControlServer, plan: TrainPlan, modelDir: string, stepsDone: number, log: Logger, emit: RunEventListener): Promise<GenerateSummary> {
  const settings = plan.generate;
  if (!settings) throw new KpCoordError('predict_with_generate is off in this plan');
  const started = performance.now();
  // One folder per round: a worker of an aborted one that is still decoding cannot overwrite
  // this round's files.
  await rm(join(plan.output_dir, 'generate'), { recursive: true, force: true });
  const outDir = join(plan.output_dir, 'generate', `round-${server.round}`);
  server.broadcast({
    kind: {
      $case: 'generate',
      value: { modelDir, outDir, maxNewTokens: settings.max_new_tokens, numBeams: settings.num_beams, noRepeatNgramSize: settings.no_repeat_ngram_size, batchSize: plan.per_device_eval_batch_size },
    },
  });
  const reports = await server.barrier.wait(ReportKind.GENERATED, 0);

  const cache = openDataCache(plan.data_cache);
  const split = cache.eval;
  if (!split) throw new KpCoordError(`${plan.data_cache}: no eval split to generate for`);
  const generated = new Array<number[] | undefined>(split.size);
  for (const r of reports) {
    const share = parseInput(GeneratedShareSchema, JSON.parse(await readFile(r.detail, 'utf8')), r.detail, 'generated share');
    for (const row of share.rows) {
      if (row.index >= split.size || generated[row.index]) throw new KpCoordError(`${r.detail}: eval sample ${row.index} is out of range or decoded twice`);
      generated[row.index] = row.ids;
    }
  }
  const missing = generated.findIndex((g) => g === undefined);
  if (missing >= 0) throw new KpCoordError(`eval sample ${missing} was decoded by no rank`);

  // A causal cache (decoder-only model) may have added its prefixes as tokens: its tokenizer has them.
  const causal = cache.manifest.layout === 'causal';
  const tokenizer = causal ? loadCacheTokenizer(cache.manifest) : loadTokenizer(cache.manifest.tokenizer.spec);
  const { input_prefix: prefix, target_prefix: targetPrefix } = cache.manifest.rules;
  const completion = { prefixes: [prefix, targetPrefix] };
  const decode = (ids: ArrayLike<number>) => tokenizer.decode(ids, { skipSpecialTokens: true });
  const raws: string[] = [];
  const lines: string[] = [];
  for (let i = 0; i < split.size; i++) {
    const raw = decode(generated[i]!);
    // A decoder-only model's output ends at eos or where it starts another example (a prefix).
    raws.push(causal ? causalCompletionText(raw, completion) : raw);
    let source = decode(split.inputIds(i));
    if (source.startsWith(prefix)) source = source.slice(prefix.length);
    // A causal prompt ends with the target prefix (trimmed): not part of the article either.
    if (causal && source.endsWith(targetPrefix.trimEnd())) source = source.slice(0, source.length - targetPrefix.trimEnd().length);
    const label = decode(split.labelIds(i));
    lines.push(JSON.stringify({
      id: split.source(i).id,
      // A causal label is the completion: the target prefix's trailing space, then the keyphrases.
      label: causal ? label.trim() : label,
      prediction: (causal ? causalKeyphrases(raw, completion) : postprocessKeyphrases(raw)).join(PREDICTION_SEPARATOR),
      raw,
      // The article as written (the training prefixes are not part of it): present/absent phrases.
      source,
    }));
  }
  const predictionsFile = join(plan.output_dir, 'eval_predictions.jsonl');
  await writeBytesAtomically(predictionsFile, `${lines.join('\n')}\n`);

  const inputs = loadInputs({ kind: 'pairs', pairs: predictionsFile, source: predictionsFile });
  const report = evaluate(inputs.documents, 10, inputs.files, inputs.pairsSha256);
  const written = writeReportFiles(join(plan.output_dir, 'eval_generate'), `${JSON.stringify(report, null, 2)}\n`, renderMarkdown(report));
  const f1 = report.field.all.scores;
  const metrics: Record<string, number> = {
    seed_f1_at_10: report.seed.f1_at_10!,
    seed_jaccard_at_10: report.seed.jaccard_at_10!,
    field_f1_at_5: f1.f1_at_5!.f1_mean,
    field_f1_at_10: f1.f1_at_10!.f1_mean,
    field_f1_at_M: f1.f1_at_M!.f1_mean,
    rouge1: report.rouge.rouge1,
    rouge2: report.rouge.rouge2,
    rougeL: report.rouge.rougeL,
    mean_phrases: report.predictions.mean_phrases,
    // Before post-processing: how often the model itself repeats a phrase.
    raw_pct_with_repeated_phrase: percent4(listStats(raws.map((r) => splitPhrases(r)), 10).shareWithRepeatedPhrase),
  };
  const seconds = (performance.now() - started) / 1000;
  log.info({ documents: split.size, seconds, ...metrics, samples: reports.reduce((n, r) => n + r.samples, 0) }, 'eval split generated and scored');
  emit({ type: 'generate_eval', stepsDone, documents: split.size, metrics, reportFile: written.json });
  return { predictions_file: predictionsFile, report_file: written.json, documents: split.size, settings, metrics, seconds };
}
