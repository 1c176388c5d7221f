import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadInputs } from '../../shared/metrics/eval-inputs.js';
import { evaluate } from '../../shared/metrics/evaluation.js';

// The team's printed eval output of polyglot-ko-1.3b run 13 (3,000 pairs). The repository root is
// three levels above this compiled file (dist/test/real/); ../shared/data sits beside the root.
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PAIRS = resolve(ROOT, '../shared/data/seed-eval-pairs/polyglot-ko-1.3b-v4-run13.jsonl');

test('shared pairs file is present', () => {
  assert.ok(existsSync(PAIRS), `missing ${PAIRS}`);
});

const inputs = loadInputs({ kind: 'pairs', pairs: PAIRS });
const report = evaluate(inputs.documents, 10, inputs.files, inputs.pairsSha256);

test("the team's metrics come out exactly as their code printed them", () => {
  assert.equal(report.inputs.documents, 3000);
  assert.deepEqual(report.seed, { f1_at_10: 61.0273, jaccard_at_10: 25.3944 });
});

test('the file is recognised and the team ROUGE figures are quoted beside ours', () => {
  const published = report.published_by_team;
  assert.ok(published !== null);
  assert.deepEqual(published.rouge, { rouge1: 50.1822, rouge2: 35.8062, rougeL: 42.1194 });
  assert.deepEqual(published.seed, report.seed);
  assert.equal(published.rouge_tokenizer, 'Komoran morphemes');
});

test("the field's metrics agree with an independent Python computation on these pairs", () => {
  // Reference values computed by a separate Python script (NFKC, whitespace, Latin lower-case,
  // de-duplication; padded @k; both averages) written from the definitions, not from this code.
  const s = report.field.all.scores;
  assert.deepEqual(s['f1_at_5'], { f1_mean: 35.6533, f1_of_macro_pr: 35.6692, macro_precision: 53.7533, macro_recall: 26.6899 });
  assert.deepEqual(s['f1_at_10'], { f1_mean: 38.9992, f1_of_macro_pr: 39.0207, macro_precision: 39.1633, macro_recall: 38.8791 });
  assert.deepEqual(s['f1_at_M'], { f1_mean: 34.1267, f1_of_macro_pr: 34.4255, macro_precision: 29.2715, macro_recall: 41.7825 });
  // At O precision equals recall in every document, so all four figures coincide.
  assert.deepEqual(s['f1_at_O'], { f1_mean: 38.9277, f1_of_macro_pr: 38.9277, macro_precision: 38.9277, macro_recall: 38.9277 });
  assert.equal(report.predictions.pct_with_repeated_phrase, 61.0333);
});

test('Korean ROUGE scores Korean (not empty) and counting ";" as a token raises it', () => {
  const { rouge1, rouge2, rougeL, with_separator_tokens: sep } = report.rouge;
  for (const x of [rouge1, rouge2, rougeL]) assert.ok(x > 10 && x < 100, `ROUGE ${x}`);
  assert.ok(rouge1 > rouge2 && rougeL > rouge2 && rouge1 >= rougeL);
  assert.ok(sep.rouge1 > rouge1 && sep.rouge2 > rouge2 && sep.rougeL > rougeL);
  // Regression values of this tokenizer; the scoring itself was checked against a separate Python
  // ROUGE on the same tokens (per-document agreement to the last bit).
  assert.deepEqual([rouge1, rouge2, rougeL], [39.9297, 19.5897, 33.635]);
  assert.deepEqual([sep.rouge1, sep.rouge2, sep.rougeL], [51.5371, 34.7351, 43.8742]);
});
