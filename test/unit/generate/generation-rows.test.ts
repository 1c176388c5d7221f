import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RowCleaner } from '../../../shared/data/clean-rows.js';
import { resolveRules } from '../../../shared/data/data-rules.js';
import { toSourceRow } from '../../../shared/data/source-row.js';
import { readGenerationRows } from '../../../shared/generate/generation-rows.js';

const dir = mkdtempSync(join(tmpdir(), 'kp-gen-rows-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function file(lines: readonly unknown[]): string {
  const path = join(dir, `rows-${n++}.jsonl`);
  writeFileSync(path, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return path;
}

const V4 = resolveRules('v4');

test('model input text is built as for training; labels are optional; no row is dropped', async () => {
  const first = { id: 7, title: '제목  하나', body: '본문\n둘', keyphrases: ['가', ' 나 ', '가'] };
  const path = file([
    first,
    { title_content: 'English only text', keyphrases: 'x;y' },
    { input_text: 'generate keyphrases: 이미 준비됨' },
    { title: '셋', content: '내용', keyphrases: null },
    { ...first, id: 'again' },
  ]);
  const rows = await readGenerationRows(path, V4);
  assert.deepEqual(
    rows.map((r) => [r.id, r.line, r.inputText, r.label]),
    [
      ['7', 1, 'generate keyphrases: 제목 하나 본문 둘', '가; 나'],
      [null, 2, 'generate keyphrases: English only text', 'x; y'],
      [null, 3, 'generate keyphrases: 이미 준비됨', null],
      [null, 4, 'generate keyphrases: 셋 내용', null],
      ['again', 5, 'generate keyphrases: 제목 하나 본문 둘', '가; 나'],
    ],
  );
  // The very text the training pipeline makes of the same record.
  const parsed = toSourceRow({ file: path, line: 1, fields: first });
  assert.ok(parsed.ok);
  const training = new RowCleaner(V4).clean(parsed.row);
  assert.ok(training.ok);
  assert.equal(rows[0]!.inputText, training.example.inputText);
  assert.equal(rows[0]!.label, training.example.targetText);

  const custom = await readGenerationRows(path, resolveRules('v4', [{ input_prefix: 'kp: ' }]));
  assert.equal(custom[0]!.inputText, 'kp: 제목 하나 본문 둘');
});

test('bad rows are errors naming the file, line and field', async () => {
  const cases: [unknown[], RegExp][] = [
    [[{ title: 't', body: 'b' }, '{"title": '], /rows-\d+\.jsonl:2: not valid JSON/],
    [[{ title: 'only a title' }], /rows-\d+\.jsonl:1: no text fields: expected title \+ body/],
    [[{ title: 't', body: 'b' }, { title: 't', body: null }], /rows-\d+\.jsonl:2: field body: no text to generate keyphrases from/],
    [[{ title: 't', body: 'b', keyphrases: 5 }], /rows-\d+\.jsonl:1: field keyphrases: expected a list of strings or one string, got number 5/],
    [[{ title: 't', body: 17 }], /rows-\d+\.jsonl:1: field body: expected a string or null/],
  ];
  for (const [lines, pattern] of cases) await assert.rejects(readGenerationRows(file(lines), V4), pattern);
  await assert.rejects(readGenerationRows(file([]), V4), /holds no rows/);
});
