import type { HistogramBin } from './list-stats.js';
import type { EvaluationReport, FieldSubset, StatsReport } from './evaluation.js';

// The Markdown report written beside the JSON: every number of the JSON, with the definitions a
// reader needs to compare them with other papers and with the team's earlier figures.

const fmt = (x: number): string => x.toFixed(4);

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n');
}

function fieldTable(subset: FieldSubset): string {
  const keys = Object.keys(subset.scores);
  const header = ['', ...keys.map((key) => key.replace('f1_at_', 'F1@'))];
  const row = (label: string, pick: (key: string) => number): string[] => [label, ...keys.map((key) => fmt(pick(key)))];
  return table(header, [
    row('F1, mean of per-document F1 (OpenNMT-kpg)', (key) => subset.scores[key]!.f1_mean),
    row('F1 of macro P and macro R (kg_one2set)', (key) => subset.scores[key]!.f1_of_macro_pr),
    row('macro precision', (key) => subset.scores[key]!.macro_precision),
    row('macro recall', (key) => subset.scores[key]!.macro_recall),
  ]);
}

function subsetSection(title: string, subset: FieldSubset): string {
  return [
    `### ${title}`,
    '',
    `${subset.documents_with_gold} documents with gold in this subset; ${subset.gold_phrases} gold and ` +
      `${subset.predicted_phrases} predicted distinct phrases.`,
    '',
    fieldTable(subset),
  ].join('\n');
}

/** Two histograms side by side as text bars, each scaled to its own largest count (shapes differ). */
export function histogramBars(left: HistogramBin[], right: HistogramBin[], names: [string, string], width = 28): string {
  const scale = (bins: HistogramBin[]): number => Math.max(1, ...bins.map((b) => b.count));
  const maxLeft = scale(left);
  const maxRight = scale(right);
  const bar = (count: number, max: number): string => '#'.repeat(Math.round((count / max) * width)).padEnd(width);
  const labelWidth = Math.max(...left.map((b) => b.label.length));
  const lines = [`${''.padStart(labelWidth)}  ${names[0].padEnd(width + 7)}  ${names[1]}`];
  left.forEach((b, i) => {
    const r = right[i]!;
    lines.push(
      `${b.label.padStart(labelWidth)}  ${bar(b.count, maxLeft)} ${String(b.count).padStart(6)}  ${bar(r.count, maxRight)} ${String(r.count).padStart(6)}`,
    );
  });
  return ['```', ...lines, '```'].join('\n');
}

function statsTable(pred: StatsReport, gold: StatsReport, k: number): string {
  const row = (label: string, pick: (s: StatsReport) => number): string[] => [label, fmt(pick(pred)), fmt(pick(gold))];
  return table(
    ['', 'predictions', 'gold'],
    [
      row('mean phrases per list', (s) => s.mean_phrases),
      row('mean distinct phrases per list', (s) => s.mean_unique_phrases),
      row('mean phrase length (characters)', (s) => s.mean_phrase_chars),
      row('mean list length (characters, separators excluded)', (s) => s.mean_list_chars),
      row('% of lists repeating a phrase', (s) => s.pct_with_repeated_phrase),
      row('% of lists empty', (s) => s.pct_empty),
      row(`% of lists with fewer than ${k} distinct phrases`, (s) => s.pct_fewer_than_k_unique),
    ],
  );
}

function describeInputs(r: EvaluationReport): string {
  const f = r.inputs.files;
  const main = f.kind === 'pairs' ? `pairs \`${f.pairs}\`` : `gold \`${f.gold}\`, predictions \`${f.prediction}\``;
  const source = f.source === undefined ? 'no article text (present/absent split not computed)' : `articles \`${f.source}\``;
  return `${r.inputs.documents} documents; ${main}; ${source}; k = ${r.k}.`;
}

export function renderMarkdown(r: EvaluationReport): string {
  const k = r.k;
  const pub = r.published_by_team;
  const printed = (key: string): string => {
    const value = pub?.seed[key];
    return value === undefined ? '—' : fmt(value);
  };
  const teamRows = [
    [`F1@${k} (lenient substring)`, fmt(r.seed[`f1_at_${k}`]!), printed(`f1_at_${k}`)],
    [`Jaccard@${k}`, fmt(r.seed[`jaccard_at_${k}`]!), printed(`jaccard_at_${k}`)],
  ];
  const rougeRows = [
    ['kp-coord tokenizer (not Komoran)', fmt(r.rouge.rouge1), fmt(r.rouge.rouge2), fmt(r.rouge.rougeL)],
    [
      'kp-coord tokenizer, ";" counted as a token',
      fmt(r.rouge.with_separator_tokens.rouge1),
      fmt(r.rouge.with_separator_tokens.rouge2),
      fmt(r.rouge.with_separator_tokens.rougeL),
    ],
  ];
  if (pub) {
    rougeRows.push([`the team's, ${pub.rouge_tokenizer} (their printed figures)`, fmt(pub.rouge.rouge1), fmt(pub.rouge.rouge2), fmt(pub.rouge.rougeL)]);
  }
  const parts = [
    '# Keyphrase evaluation',
    '',
    describeInputs(r),
    '',
    "## The team's metrics",
    '',
    `As ../shared/data/README.md defines them: phrases split on ";", predictions cut to the first ${k}, ` +
      'a prediction counts when it contains or is contained in a gold phrase; lists, not sets; x100.',
    '',
    table(['metric', 'kp-coord', pub ? "team's printed figure" : 'published'], teamRows),
    '',
    "## The field's metrics",
    '',
    `Matching: ${r.field.matching}.`,
    '',
    `Cutoffs: ${r.field.cutoffs}.`,
    '',
    `Averaging: ${r.field.averaging}.`,
    '',
    subsetSection('All keyphrases', r.field.all),
  ];
  if (r.field.present && r.field.absent) {
    parts.push(
      '',
      'A phrase is present when its normal form occurs (as characters) in the normalised article text.',
      '',
      subsetSection('Present keyphrases', r.field.present),
      '',
      subsetSection('Absent keyphrases', r.field.absent),
    );
  }
  parts.push(
    '',
    '## ROUGE on Korean',
    '',
    'Per document, gold string against prediction string, F-measure, averaged, x100.',
    `Tokenizer: ${r.rouge.tokenizer}. Komoran splits compounds into morphemes and separates particles, ` +
      'so it gives partial credit for partly right compounds that whole Hangul runs do not. ' +
      'The ";"-as-token row shows how much counting the separators adds.',
    '',
    table(['', 'ROUGE-1', 'ROUGE-2', 'ROUGE-L'], rougeRows),
    '',
    '## Shape of the lists',
    '',
    statsTable(r.predictions, r.gold, k),
    '',
    '### Phrases per list',
    '',
    'Counts per bin; each column\'s bars are scaled to its own largest bin.',
    '',
    histogramBars(r.predictions.histogram_phrases_per_list, r.gold.histogram_phrases_per_list, ['predictions', 'gold']),
    '',
    '### Phrase length in characters',
    '',
    histogramBars(r.predictions.histogram_phrase_chars, r.gold.histogram_phrase_chars, ['predictions', 'gold']),
    '',
  );
  return parts.join('\n');
}
