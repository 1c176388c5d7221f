import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputFileError } from '../../../shared/errors.js';
import { loadInputs } from '../../../shared/metrics/eval-inputs.js';

function withDir(body: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'kp-eval-inputs-'));
  try {
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function file(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** Assert that `fn` throws an InputFileError whose message contains every fragment. */
function throwsInput(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InputFileError, `not an InputFileError: ${String(err)}`);
    for (const f of fragments) assert.ok(err.message.includes(f), `"${err.message}" lacks "${f}"`);
    return true;
  });
}

test('pairs rows become phrase lists and keep their texts for ROUGE', () => {
  withDir((dir) => {
    const pairs = file(dir, 'p.jsonl', '{"label": "a; b", "prediction": "c; ; d"}\n{"label": "e", "prediction": ""}\n');
    const { documents, pairsSha256 } = loadInputs({ kind: 'pairs', pairs });
    assert.equal(documents.length, 2);
    assert.deepEqual(documents[0], { gold: ['a', 'b'], prediction: ['c', 'd'], goldText: 'a; b', predictionText: 'c; ; d', source: null });
    assert.deepEqual(documents[1]!.prediction, []);
    assert.match(pairsSha256!, /^[0-9a-f]{64}$/);
  });
});

test('gold and predictions as plain text or JSONL (string or array), with aligned sources', () => {
  withDir((dir) => {
    const gold = file(dir, 'gold.txt', 'a; b\nc\n');
    const pred = file(dir, 'pred.jsonl', '{"prediction": ["a", " x "]}\n{"keyphrases": "c; d"}\n');
    const source = file(dir, 'src.jsonl', '{"title_content": "a and b"}\n{"title": "T", "body": "c d"}\n');
    const { documents } = loadInputs({ kind: 'gold-prediction', gold, prediction: pred, source });
    assert.deepEqual(documents.map((d) => d.prediction), [['a', 'x'], ['c', 'd']]);
    assert.equal(documents[0]!.predictionText, 'a; x');
    assert.deepEqual(documents.map((d) => d.source), ['a and b', 'T c d']);
  });
});

test('bad rows are reported with file, line and field', () => {
  withDir((dir) => {
    const notJson = file(dir, 'a.jsonl', '{"label": "a", "prediction": "b"}\n{oops\n');
    throwsInput(() => loadInputs({ kind: 'pairs', pairs: notJson }), `${notJson}:2`, 'not valid JSON');
    const wrongType = file(dir, 'b.jsonl', '{"label": 3, "prediction": "b"}\n');
    throwsInput(() => loadInputs({ kind: 'pairs', pairs: wrongType }), `${wrongType}:1`, 'field "label"');
    const blank = file(dir, 'c.jsonl', '{"label": "a", "prediction": "b"}\n\n{"label": "a", "prediction": "b"}\n');
    throwsInput(() => loadInputs({ kind: 'pairs', pairs: blank }), `${blank}:2`, 'blank line');
    const emptyGold = file(dir, 'd.jsonl', '{"label": " ; ", "prediction": "b"}\n');
    throwsInput(() => loadInputs({ kind: 'pairs', pairs: emptyGold }), `${emptyGold}:1`, 'no keyphrases');
    const gold = file(dir, 'g.jsonl', '{"label": "a", "keyphrases": "b"}\n');
    const pred = file(dir, 'p.txt', 'a\n');
    throwsInput(() => loadInputs({ kind: 'gold-prediction', gold, prediction: pred }), `${gold}:1`, 'both given');
    const noField = file(dir, 'h.jsonl', '{"text": "a"}\n');
    throwsInput(() => loadInputs({ kind: 'gold-prediction', gold: noField, prediction: pred }), `${noField}:1`, 'missing');
    const badSource = file(dir, 's.jsonl', '{"title": "only a title"}\n');
    const okGold = file(dir, 'ok.txt', 'a\n');
    throwsInput(() => loadInputs({ kind: 'gold-prediction', gold: okGold, prediction: pred, source: badSource }), `${badSource}:1`, 'title_content');
  });
});

test('files that do not align, or do not exist, are refused', () => {
  withDir((dir) => {
    const gold = file(dir, 'g.txt', 'a\nb\n');
    const pred = file(dir, 'p.txt', 'a\n');
    throwsInput(() => loadInputs({ kind: 'gold-prediction', gold, prediction: pred }), pred, '1 rows', '2');
    throwsInput(() => loadInputs({ kind: 'pairs', pairs: join(dir, 'missing.jsonl') }), 'missing.jsonl', 'cannot read');
    const empty = file(dir, 'e.jsonl', '');
    throwsInput(() => loadInputs({ kind: 'pairs', pairs: empty }), empty, 'no rows');
    const twoSources = file(dir, 's.jsonl', '{"source": "a"}\n{"source": "b"}\n{"source": "c"}\n');
    throwsInput(() => loadInputs({ kind: 'gold-prediction', gold, prediction: file(dir, 'p2.txt', 'a\nb\n'), source: twoSources }), twoSources, '3 rows');
  });
});

test('a plain-text prediction line may be empty; a gold line may not', () => {
  withDir((dir) => {
    const gold = file(dir, 'g.txt', 'a\nb\n');
    const pred = file(dir, 'p.txt', '\nb\n');
    assert.deepEqual(loadInputs({ kind: 'gold-prediction', gold, prediction: pred }).documents[0]!.prediction, []);
    throwsInput(() => loadInputs({ kind: 'gold-prediction', gold: pred, prediction: gold }), `${pred}:1`, 'gold has no keyphrases');
  });
});
