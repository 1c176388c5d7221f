import { mean } from './round.js';

// The keyphrase-generation literature's exact-match F1 at cutoffs (Chan et al. 2019; Yuan et al.
// 2020), on phrases already normalised and de-duplicated (see normalise.ts).
//
// Cutoffs:
//   k (5, 10, ...): the first k predictions. Fewer than k predictions count as if padded with
//                   wrong ones, so precision is matches/k (Chan et al. 2019; kg_one2set's default).
//                   OpenNMT-kpg's default divides by min(k, #predictions) instead.
//   'M':            all predictions; precision is matches/#predictions (Chan et al. 2019).
//   'O':            k = #gold phrases (Yuan et al. 2020), padded as above, so precision = recall.
// Recall is matches/#gold everywhere. A document without gold (e.g. no absent gold) or without
// predictions scores P = R = F1 = 0 and still counts in the average, as both codebases do.
//
// Averaging over documents is reported both ways because the two codebases differ:
//   f1Mean       mean of per-document F1 (OpenNMT-kpg);
//   f1OfMacroPR  harmonic mean of the mean P and the mean R (kg_one2set).

export type Cutoff = number | 'M' | 'O';

export interface PRF {
  readonly precision: number;
  readonly recall: number;
  readonly f1: number;
}

export interface AveragedPRF {
  readonly macroPrecision: number;
  readonly macroRecall: number;
  readonly f1Mean: number;
  readonly f1OfMacroPR: number;
}

export function cutoffName(cutoff: Cutoff): string {
  return typeof cutoff === 'number' ? String(cutoff) : cutoff;
}

function f1Of(precision: number, recall: number): number {
  return precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
}

/** P, R, F1 of one document at one cutoff; both lists normalised and de-duplicated. */
export function exactMatchAt(gold: readonly string[], prediction: readonly string[], cutoff: Cutoff): PRF {
  if (gold.length === 0 || prediction.length === 0) return { precision: 0, recall: 0, f1: 0 };
  const k = cutoff === 'M' ? prediction.length : cutoff === 'O' ? gold.length : cutoff;
  const goldSet = new Set(gold);
  let matches = 0;
  for (const p of prediction.slice(0, k)) if (goldSet.has(p)) matches += 1;
  const precision = matches / k;
  const recall = matches / gold.length;
  return { precision, recall, f1: f1Of(precision, recall) };
}

/** Average per-document scores both ways (see the note at the top). */
export function averagePRF(perDocument: readonly PRF[]): AveragedPRF {
  const macroPrecision = mean(perDocument.map((s) => s.precision));
  const macroRecall = mean(perDocument.map((s) => s.recall));
  return {
    macroPrecision,
    macroRecall,
    f1Mean: mean(perDocument.map((s) => s.f1)),
    f1OfMacroPR: f1Of(macroPrecision, macroRecall),
  };
}

/** A document's phrases split by whether their normal form occurs in the normalised source. */
export interface PresentAbsent {
  readonly present: string[];
  readonly absent: string[];
}

/**
 * Present means the normalised phrase is a substring of the normalised source text, at the
 * character level: Korean attaches particles to nouns ("보드게임을"), so requiring word
 * boundaries would call most present Korean phrases absent.
 */
export function splitPresentAbsent(phrases: readonly string[], normalisedSource: string): PresentAbsent {
  const present: string[] = [];
  const absent: string[] = [];
  for (const p of phrases) (normalisedSource.includes(p) ? present : absent).push(p);
  return { present, absent };
}
