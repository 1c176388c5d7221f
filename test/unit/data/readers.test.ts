import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { CsvParser, parseCsv, type CsvRecord } from '../../../shared/data/csv-reader.js';
import { readSource } from '../../../shared/data/read-source.js';
import type { ReadItem } from '../../../shared/data/source-record.js';
import { InputFileError } from '../../../shared/errors.js';
import { fixture, scratchDir } from './helpers.js';

async function collect(file: string): Promise<ReadItem[]> {
  const out: ReadItem[] = [];
  for await (const item of readSource(file)) out.push(item);
  return out;
}

test('CSV: RFC 4180 quoting, "" escapes, commas and line breaks inside quotes, CRLF and LF', () => {
  const recs = parseCsv('a,b,c\r\n1,"x, y","say ""hi"""\n2,"two\r\nlines",\r\n"",3,z');
  assert.deepEqual(recs, [
    { line: 1, values: ['a', 'b', 'c'] },
    { line: 2, values: ['1', 'x, y', 'say "hi"'] },
    { line: 3, values: ['2', 'two\r\nlines', ''] },
    { line: 5, values: ['', '3', 'z'] },
  ]);
});

test('CSV: blank lines are skipped, a lone CR ends a line, no final newline is fine', () => {
  assert.deepEqual(parseCsv('a\n\nb\rc'), [
    { line: 1, values: ['a'] },
    { line: 3, values: ['b'] },
    { line: 4, values: ['c'] },
  ]);
});

test('CSV: malformed records are reported with their line, and parsing resumes on the next line', () => {
  const recs = parseCsv('a,b\nx"y,1\n"q"z,2\nok,3\n"open,4');
  assert.deepEqual(
    recs.map((r) => ('error' in r ? `${r.line}: ${r.error}` : `${r.line}: ${r.values.join('|')}`)),
    [
      '1: a|b',
      '2: a quote inside an unquoted field (field 1); quote the whole field and write "" for a quote',
      '3: text after the closing quote of field 1',
      '4: ok|3',
      '5: a quoted field is not closed before the end of the file',
    ],
  );
});

test('CSV: chunk boundaries anywhere give the same records', () => {
  const text = readFileSync(fixture('rows-bom-crlf.csv'), 'utf8').slice(1);
  const whole = parseCsv(text);
  for (const size of [1, 2, 3, 7, 64]) {
    const p = new CsvParser();
    const out: CsvRecord[] = [];
    for (let i = 0; i < text.length; i += size) p.push(text.slice(i, i + size), out);
    p.end(out);
    assert.deepEqual(out, whole, `chunks of ${size}`);
  }
});

test('CSV file with a BOM and CRLF: header names fields, a quoted body spans two lines', async () => {
  const bytes = readFileSync(fixture('rows-bom-crlf.csv'));
  assert.deepEqual([...bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'the fixture starts with a UTF-8 BOM');
  assert.ok(bytes.includes('\r\n'), 'the fixture has CRLF line ends');
  const items = await collect(fixture('rows-bom-crlf.csv'));
  assert.ok(items.every((i) => i.ok));
  const recs = items.map((i) => (i.ok ? i.record : undefined)!);
  assert.deepEqual(Object.keys(recs[0]!.fields), ['id', 'title', 'body', 'keyphrases']);
  assert.equal(recs[0]!.fields.body, '해람시 도서관이 문을 열었다.\r\n시장은 "책 읽는 도시"를 만들겠다고 말했다.');
  assert.deepEqual(recs.map((r) => r.line), [2, 4, 5]);
});

test('CSV: a bad header throws naming the file; a record with the wrong field count is a bad line', async (t) => {
  const dir = scratchDir(t);
  const dup = join(dir, 'dup.csv');
  writeFileSync(dup, 'id,title,title\n1,a,b\n');
  await assert.rejects(collect(dup), (e: unknown) => e instanceof InputFileError && e.message === `${dup}:1: CSV header: column "title" appears twice`);
  const short = join(dir, 'short.csv');
  writeFileSync(short, 'id,title,body\n1,a\n2,b,c\n');
  const items = await collect(short);
  assert.deepEqual(items[0], { ok: false, bad: { file: short, line: 2, reason: 'expected 3 fields as in the header, found 2' } });
  assert.equal(items[1]!.ok, true);
});

test('JSONL with a BOM and CRLF reads like plain JSONL', async () => {
  const bytes = readFileSync(fixture('rows-bom-crlf.jsonl'));
  assert.deepEqual([...bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf]);
  assert.ok(bytes.includes('\r\n'));
  const items = await collect(fixture('rows-bom-crlf.jsonl'));
  assert.equal(items.length, 2);
  assert.ok(items.every((i) => i.ok));
  const first = items[0]!;
  assert.ok(first.ok && first.record.fields.id === 'keep-basic' && first.record.line === 1);
});

test('JSONL: a broken line and a non-object line are bad lines with their numbers; blank lines are skipped', async (t) => {
  const items = await collect(fixture('corrupt.jsonl'));
  const bad = items.filter((i) => !i.ok).map((i) => (i.ok ? 0 : i.bad.line));
  assert.deepEqual(bad, [2]);
  const dir = scratchDir(t);
  const f = join(dir, 'x.jsonl');
  writeFileSync(f, '{"a":1}\n\n[1,2]\n  \n"s"\n');
  const got = (await collect(f)).map((i) => (i.ok ? `ok ${i.record.line}` : `${i.bad.line}: ${i.bad.reason}`));
  assert.deepEqual(got, ['ok 1', '3: expected a JSON object, got an array', '5: expected a JSON object, got "s"']);
});

test('unknown inputs are refused naming the formats read (Parquet: see parquet.test.ts)', () => {
  assert.throws(() => readSource('x.xlsx'), /unknown input format "\.xlsx"; expected one of .*\.parquet/u);
});

// Invalid UTF-8: a lone continuation byte, a truncated 3-byte Hangul sequence, an overlong '/'.
const BAD_UTF8 = [Buffer.from([0x80]), Buffer.from([0xea, 0xb0]), Buffer.from([0xc0, 0xaf])];

test('JSONL: a line that is not UTF-8 is a bad line with its number, never U+FFFD text', async (t) => {
  const dir = scratchDir(t);
  for (const bad of BAD_UTF8) {
    const f = join(dir, 'mixed.jsonl');
    const good = (title: string) => Buffer.from(`{"title":"${title}","body":"본문"}\n`);
    writeFileSync(f, Buffer.concat([good('첫째'), Buffer.from('{"title":"'), bad, Buffer.from('","body":"본문"}\r\n'), good('셋째')]));
    const got = (await collect(f)).map((i) => (i.ok ? `ok ${i.record.line} ${String(i.record.fields.title)}` : `${i.bad.line}: ${i.bad.reason}`));
    assert.equal(got.length, 3, got.join('\n'));
    assert.deepEqual([got[0], got[2]], ['ok 1 첫째', 'ok 3 셋째']);
    assert.match(got[1]!, /^2: not valid UTF-8 at byte 11 of the line \(bytes /u);
    assert.ok(!got.join('').includes('\uFFFD'));
  }
});

test('CSV: a line that is not UTF-8 spoils its record (also inside a quoted multi-line field); others are read', async (t) => {
  const dir = scratchDir(t);
  const f = join(dir, 'mixed.csv');
  writeFileSync(f, Buffer.concat([Buffer.from('title,body\n제목1,"본문\n'), BAD_UTF8[1]!, Buffer.from('둘째 줄"\n제목2,본문2\n')]));
  const got = (await collect(f)).map((i) => (i.ok ? `ok ${i.record.line} ${String(i.record.fields.title)}` : `${i.bad.line}: ${i.bad.reason}`));
  assert.deepEqual(got, ['2: line 3: not valid UTF-8 at byte 1 of the line (bytes ea b0 eb 91); save the file as UTF-8', 'ok 4 제목2']);
  // A header that is not UTF-8 makes the file unreadable, naming it.
  writeFileSync(f, Buffer.concat([Buffer.from('ti'), BAD_UTF8[0]!, Buffer.from('tle,body\n제목,본문\n')]));
  await assert.rejects(collect(f), (e: unknown) => e instanceof InputFileError && /mixed\.csv:1: bad CSV header: line 1: not valid UTF-8/u.test(e.message));
});
