import type { EvaluationReport, FieldSubset } from './evaluation.js';

// The plain-text summary `kp-coord evaluate` prints on stdout by default: the headline numbers in
// aligned columns; the Markdown report (--out) has the definitions and histograms.

const COLUMN = 13;
const LABEL = 34;
const fmt = (x: number): string => x.toFixed(4).padStart(COLUMN);
const header = (title: string, columns: string[]): string => `${title.padEnd(LABEL + 2)}${columns.map((c) => c.padStart(COLUMN)).join('')}`;

function fieldLines(name: string, subset: FieldSubset): string[] {
  const keys = Object.keys(subset.scores);
  return [
    header(`  ${name}`, keys.map((key) => key.replace('f1_at_', 'F1@'))),
    `    ${'F1 mean per document'.padEnd(LABEL - 2)}${keys.map((key) => fmt(subset.scores[key]!.f1_mean)).join('')}`,
    `    ${'F1 of macro P, R'.padEnd(LABEL - 2)}${keys.map((key) => fmt(subset.scores[key]!.f1_of_macro_pr)).join('')}`,
  ];
}

export function renderSummary(r: EvaluationReport): string {
  const k = r.k;
  const pub = r.published_by_team;
  const lines = [`${r.inputs.documents} documents, k = ${k}`, '', `team metrics (lenient substring, lists)`];
  const printed = (key: string): string => {
    const value = pub?.seed[key];
    return value === undefined ? '' : fmt(value);
  };
  lines[2] = header(lines[2]!, pub?.seed[`f1_at_${k}`] !== undefined ? ['kp-coord', 'team printed'] : ['kp-coord']);
  for (const [key, label] of [[`f1_at_${k}`, `F1@${k}`], [`jaccard_at_${k}`, `Jaccard@${k}`]] as const) {
    lines.push(`  ${label.padEnd(LABEL)}${fmt(r.seed[key]!)}${printed(key)}`);
  }
  lines.push('', 'field metrics (exact match after normalisation, de-duplicated)');
  lines.push(...fieldLines('all', r.field.all));
  if (r.field.present) lines.push(...fieldLines('present', r.field.present));
  if (r.field.absent) lines.push(...fieldLines('absent', r.field.absent));
  lines.push('', header('ROUGE (F-measure, per document)', ['ROUGE-1', 'ROUGE-2', 'ROUGE-L']));
  const rougeLine = (label: string, a: number, b: number, c: number): string => `  ${label.padEnd(LABEL)}${fmt(a)}${fmt(b)}${fmt(c)}`;
  lines.push(rougeLine('kp-coord tokenizer (not Komoran)', r.rouge.rouge1, r.rouge.rouge2, r.rouge.rougeL));
  const sep = r.rouge.with_separator_tokens;
  lines.push(rougeLine('  with ";" as a token', sep.rouge1, sep.rouge2, sep.rougeL));
  if (pub) lines.push(rougeLine(`team's printed (${pub.rouge_tokenizer})`, pub.rouge.rouge1, pub.rouge.rouge2, pub.rouge.rougeL));
  const p = r.predictions;
  const g = r.gold;
  lines.push('', header('lists', ['predictions', 'gold']));
  const statLine = (label: string, a: number, b: number): string => `  ${label.padEnd(LABEL)}${fmt(a)}${fmt(b)}`;
  lines.push(statLine('mean phrases', p.mean_phrases, g.mean_phrases));
  lines.push(statLine('mean phrase length (chars)', p.mean_phrase_chars, g.mean_phrase_chars));
  lines.push(statLine('% repeating a phrase', p.pct_with_repeated_phrase, g.pct_with_repeated_phrase));
  return `${lines.join('\n')}\n`;
}
