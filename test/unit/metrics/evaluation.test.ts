import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EvalDocument } from '../../../shared/metrics/eval-inputs.js';
import { evaluate, fieldCutoffs } from '../../../shared/metrics/evaluation.js';
import { renderMarkdown } from '../../../shared/metrics/report.js';
import { renderSummary } from '../../../shared/metrics/summary-table.js';
import { writeReportFiles } from '../../../shared/metrics/write-report-files.js';

const doc = (gold: string[], prediction: string[], source: string | null): EvalDocument => ({
  gold,
  prediction,
  goldText: gold.join('; '),
  predictionText: prediction.join('; '),
  source,
});

// Document 1: gold 벤제마 (present), 발롱도르 (absent); predictions 벤제마 (present, right),
//             레알 (present, wrong), 발롱도르 (absent, right).
// Document 2: gold 국회 (present); prediction empty.
const documents = [
  doc(['벤제마', '발롱도르'], ['벤제마', '레알', '발롱도르'], '레알 마드리드의 벤제마'),
  doc(['국회'], [], '국회 법사위'),
];
const files = { kind: 'pairs', pairs: 'crafted.jsonl' } as const;

test('fieldCutoffs lists 5, 10, the chosen k, M and O once each', () => {
  assert.deepEqual(fieldCutoffs(10), [5, 10, 'M', 'O']);
  assert.deepEqual(fieldCutoffs(3), [3, 5, 10, 'M', 'O']);
});

test('evaluate reports the team metrics under "seed" with keys that follow k', () => {
  const r = evaluate(documents, 2, files, null);
  // Doc 1 @2 [벤제마, 레알]: TP 1, FP 1, FN 1 (발롱도르) -> P 1/2, R 1/2, F1 1/2. Doc 2: 0. Mean 25.
  // Jaccard@2: doc 1 common 1 / (2 + 2 - 1) = 1/3; doc 2: 0. Mean 1/6 -> 16.6667.
  assert.deepEqual(r.seed, { f1_at_2: 25, jaccard_at_2: 16.6667 });
  assert.equal(r.published_by_team, null);
});

test('evaluate splits present and absent phrases by the article text', () => {
  const r = evaluate(documents, 10, files, null);
  // All @M: doc 1 P 2/3, R 1, F1 0.8; doc 2 0. f1_mean 40; macro P 1/3, R 1/2 -> F1 0.4 -> 40.
  assert.deepEqual(r.field.all.scores['f1_at_M'], { f1_mean: 40, f1_of_macro_pr: 40, macro_precision: 33.3333, macro_recall: 50 });
  // Present @M: doc 1 gold [벤제마], preds [벤제마, 레알] -> P 1/2, R 1, F1 2/3; doc 2 0.
  const present = r.field.present!;
  assert.equal(present.documents_with_gold, 2);
  assert.deepEqual(present.scores['f1_at_M'], { f1_mean: 33.3333, f1_of_macro_pr: 33.3333, macro_precision: 25, macro_recall: 50 });
  // Absent @M: doc 1 gold [발롱도르], preds [발롱도르] -> 1; doc 2 has no absent gold -> 0.
  const absent = r.field.absent!;
  assert.equal(absent.documents_with_gold, 1);
  assert.equal(absent.scores['f1_at_M']!.f1_mean, 50);
  // @5 pads: absent doc 1 P 1/5, R 1 -> F1 1/3; mean over 2 docs 1/6.
  assert.equal(absent.scores['f1_at_5']!.f1_mean, 16.6667);
});

test('without article text there is no present/absent split', () => {
  const r = evaluate(documents.map((d) => ({ ...d, source: null })), 10, files, null);
  assert.equal(r.field.present, null);
  assert.equal(r.field.absent, null);
  assert.ok(!renderMarkdown(r).includes('Present keyphrases'));
});

test('the team printed figures appear, labelled, only for a recognised file', () => {
  const known = '8d7969cd0230d071d14dcd572050b1aa66f0650d5dfb4926358e9d2de18d323a';
  const r = evaluate(documents, 10, files, known);
  assert.equal(r.published_by_team!.rouge.rouge1, 50.1822);
  assert.deepEqual(r.published_by_team!.seed, { f1_at_10: 61.0273, jaccard_at_10: 25.3944 });
  const md = renderMarkdown(r);
  assert.ok(md.includes("the team's, Komoran morphemes (their printed figures) | 50.1822 | 35.8062 | 42.1194"));
  assert.ok(renderSummary(r).includes("team's printed (Komoran morphemes)"));
  // With another k the team's F1@10 is not comparable and is not shown beside ours. Doc 1 @5:
  // TP 2, FP 1, FN 0 -> F1 0.8; doc 2: 0 -> 40.
  assert.ok(renderMarkdown(evaluate(documents, 5, files, known)).includes('| F1@5 (lenient substring) | 40.0000 | — |'));
});

test('the Markdown report carries the numbers and histograms', () => {
  const r = evaluate(documents, 10, files, null);
  const md = renderMarkdown(r);
  assert.ok(md.includes('| F1@10 (lenient substring) |'));
  assert.ok(md.includes('### Present keyphrases'));
  assert.ok(md.includes('### Phrases per list'));
  assert.ok(md.includes('| % of lists repeating a phrase | 0.0000 | 0.0000 |'));
});

test('writeReportFiles writes both files and leaves no temp file behind', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-eval-report-'));
  try {
    const written = writeReportFiles(join(dir, 'run'), '{"a":1}\n', '# r\n');
    assert.equal(readFileSync(written.json, 'utf8'), '{"a":1}\n');
    assert.equal(readFileSync(written.markdown, 'utf8'), '# r\n');
    assert.deepEqual(readdirSync(dir).sort(), ['run.json', 'run.md']);
    assert.throws(() => writeReportFiles(join(dir, 'no-such-dir', 'run'), '{}', ''), /cannot write/);
    assert.deepEqual(readdirSync(dir).sort(), ['run.json', 'run.md']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
