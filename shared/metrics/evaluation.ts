import type { EvalDocument, InputFiles } from './eval-inputs.js';
import { averagePRF, cutoffName, exactMatchAt, splitPresentAbsent, type Cutoff, type PRF } from './field-metrics.js';
import { listStats, type HistogramBin, type ListStats } from './list-stats.js';
import { normalisePhrases, normaliseText } from './normalise.js';
import { publishedResultFor, type PublishedResult } from './published-results.js';
import { mean, percent4, roundLikePython } from './round.js';
import { rougeScores, type RougeScores } from './rouge.js';
import { ROUGE_TOKENIZER_DESCRIPTION, tokenizeKorean } from './rouge-tokenizer.js';
import { teamF1AtK, teamJaccardAtK } from './team-metrics.js';

// Every metric of `kp-coord evaluate` over a set of documents, as the JSON the command prints.
// Scores are percentages rounded to 4 places (the team's format); counts and means are plain.

export const EVALUATION_SCHEMA = 'kp-coord.evaluate/1';

export interface AveragedScores {
  readonly f1_mean: number;
  readonly f1_of_macro_pr: number;
  readonly macro_precision: number;
  readonly macro_recall: number;
}

export interface FieldSubset {
  readonly documents_with_gold: number;
  readonly gold_phrases: number;
  readonly predicted_phrases: number;
  /** Keyed f1_at_5, f1_at_10, f1_at_M, f1_at_O (and f1_at_<k> for another --k). */
  readonly scores: Record<string, AveragedScores>;
}

export interface RougeReport {
  readonly rouge1: number;
  readonly rouge2: number;
  readonly rougeL: number;
}

export interface StatsReport {
  readonly lists: number;
  readonly mean_phrases: number;
  readonly mean_unique_phrases: number;
  readonly mean_phrase_chars: number;
  readonly mean_list_chars: number;
  readonly pct_with_repeated_phrase: number;
  readonly pct_empty: number;
  readonly pct_fewer_than_k_unique: number;
  readonly histogram_phrases_per_list: HistogramBin[];
  readonly histogram_phrase_chars: HistogramBin[];
}

export interface EvaluationReport {
  readonly schema: string;
  readonly inputs: { readonly files: InputFiles; readonly documents: number; readonly pairs_sha256: string | null };
  readonly k: number;
  /** The team's metrics: f1_at_<k>, jaccard_at_<k>. */
  readonly seed: Record<string, number>;
  readonly field: {
    readonly matching: string;
    readonly cutoffs: string;
    readonly averaging: string;
    readonly all: FieldSubset;
    readonly present: FieldSubset | null;
    readonly absent: FieldSubset | null;
  };
  readonly rouge: RougeReport & {
    readonly tokenizer: string;
    readonly with_separator_tokens: RougeReport;
  };
  /** The team's printed figures for this exact file, when recognised; their ROUGE is Komoran's. */
  readonly published_by_team: {
    readonly name: string;
    readonly note: string;
    readonly seed: Record<string, number>;
    readonly rouge: RougeReport;
    readonly rouge_tokenizer: string;
  } | null;
  readonly predictions: StatsReport;
  readonly gold: StatsReport;
}

export function fieldCutoffs(k: number): Cutoff[] {
  const ks = [...new Set([5, 10, k])].sort((a, b) => a - b);
  return [...ks, 'M', 'O'];
}

function fieldSubset(pairs: readonly { gold: string[]; prediction: string[] }[], cutoffs: readonly Cutoff[]): FieldSubset {
  const scores: Record<string, AveragedScores> = {};
  for (const cutoff of cutoffs) {
    const perDocument: PRF[] = pairs.map((p) => exactMatchAt(p.gold, p.prediction, cutoff));
    const a = averagePRF(perDocument);
    scores[`f1_at_${cutoffName(cutoff)}`] = {
      f1_mean: percent4(a.f1Mean),
      f1_of_macro_pr: percent4(a.f1OfMacroPR),
      macro_precision: percent4(a.macroPrecision),
      macro_recall: percent4(a.macroRecall),
    };
  }
  let goldPhrases = 0;
  let predictedPhrases = 0;
  for (const p of pairs) {
    goldPhrases += p.gold.length;
    predictedPhrases += p.prediction.length;
  }
  return {
    documents_with_gold: pairs.filter((p) => p.gold.length > 0).length,
    gold_phrases: goldPhrases,
    predicted_phrases: predictedPhrases,
    scores,
  };
}

function averageRouge(scores: readonly RougeScores[]): RougeReport {
  return {
    rouge1: percent4(mean(scores.map((s) => s.rouge1))),
    rouge2: percent4(mean(scores.map((s) => s.rouge2))),
    rougeL: percent4(mean(scores.map((s) => s.rougeL))),
  };
}

const round4 = (x: number): number => roundLikePython(x, 4);

function publishedReport(p: PublishedResult): NonNullable<EvaluationReport['published_by_team']> {
  return {
    name: p.name,
    note: "the team's printed figures for this exact file (recognised by sha256), quoted, not recomputed",
    seed: { [`f1_at_${p.k}`]: p.f1AtK, [`jaccard_at_${p.k}`]: p.jaccardAtK },
    rouge: { rouge1: p.rouge1, rouge2: p.rouge2, rougeL: p.rougeL },
    rouge_tokenizer: p.rougeTokenizer,
  };
}

function statsReport(s: ListStats): StatsReport {
  return {
    lists: s.lists,
    mean_phrases: round4(s.meanPhrases),
    mean_unique_phrases: round4(s.meanUniquePhrases),
    mean_phrase_chars: round4(s.meanPhraseChars),
    mean_list_chars: round4(s.meanListChars),
    pct_with_repeated_phrase: percent4(s.shareWithRepeatedPhrase),
    pct_empty: percent4(s.shareEmpty),
    pct_fewer_than_k_unique: percent4(s.shareFewerThanK),
    histogram_phrases_per_list: s.phrasesPerList,
    histogram_phrase_chars: s.phraseChars,
  };
}

export function evaluate(
  documents: readonly EvalDocument[],
  k: number,
  files: InputFiles,
  pairsSha256: string | null,
): EvaluationReport {
  // The team's metrics, on their raw lists.
  const seed: Record<string, number> = {
    [`f1_at_${k}`]: percent4(mean(documents.map((d) => teamF1AtK(d.gold, d.prediction, k)))),
    [`jaccard_at_${k}`]: percent4(mean(documents.map((d) => teamJaccardAtK(d.gold, d.prediction, k)))),
  };

  // The field's metrics, on normal forms; present/absent only when the articles are given.
  const cutoffs = fieldCutoffs(k);
  const normal = documents.map((d) => ({ gold: normalisePhrases(d.gold), prediction: normalisePhrases(d.prediction) }));
  const hasSource = documents.every((d) => d.source !== null);
  let present: FieldSubset | null = null;
  let absent: FieldSubset | null = null;
  if (hasSource) {
    const split = normal.map((n, i) => {
      const source = normaliseText(documents[i]!.source ?? '');
      return { gold: splitPresentAbsent(n.gold, source), prediction: splitPresentAbsent(n.prediction, source) };
    });
    present = fieldSubset(split.map((s) => ({ gold: s.gold.present, prediction: s.prediction.present })), cutoffs);
    absent = fieldSubset(split.map((s) => ({ gold: s.gold.absent, prediction: s.prediction.absent })), cutoffs);
  }

  // ROUGE on the whole gold and prediction strings, per document, averaged.
  const rouge = documents.map((d) => rougeScores(tokenizeKorean(d.goldText), tokenizeKorean(d.predictionText)));
  const rougeSep = documents.map((d) =>
    rougeScores(tokenizeKorean(d.goldText, { keepSeparators: true }), tokenizeKorean(d.predictionText, { keepSeparators: true })),
  );

  const published = publishedResultFor(pairsSha256);
  return {
    schema: EVALUATION_SCHEMA,
    inputs: { files, documents: documents.length, pairs_sha256: pairsSha256 },
    k,
    seed,
    field: {
      matching: 'exact string match after NFKC, whitespace collapsed, Latin lower-cased; gold and predictions de-duplicated',
      cutoffs:
        '@k: first k predictions, precision = matches/k (short lists padded with misses, Chan et al. 2019); ' +
        '@M: all predictions, precision = matches/#predictions; @O: k = #gold (Yuan et al. 2020); recall = matches/#gold',
      averaging:
        'f1_mean: mean of per-document F1 (OpenNMT-kpg); f1_of_macro_pr: harmonic mean of mean P and mean R (kg_one2set); ' +
        'all documents counted, a document without gold in the subset scoring 0',
      all: fieldSubset(normal, cutoffs),
      present,
      absent,
    },
    rouge: { ...averageRouge(rouge), tokenizer: ROUGE_TOKENIZER_DESCRIPTION, with_separator_tokens: averageRouge(rougeSep) },
    published_by_team: published === null ? null : publishedReport(published),
    predictions: statsReport(listStats(documents.map((d) => d.prediction), k)),
    gold: statsReport(listStats(documents.map((d) => d.gold), k)),
  };
}
