import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import * as zlib from 'node:zlib';
import { parquetMetadata } from 'hyparquet';
import { openDataCache, type DataSplit } from '../../../shared/data/data-cache.js';
import { PARQUET_CODECS } from '../../../shared/data/parquet-reader.js';
import { prepareData, type PrepareOptions, type PrepareReport } from '../../../shared/data/prepare.js';
import { readSource } from '../../../shared/data/read-source.js';
import type { ReadItem, SourceRecord } from '../../../shared/data/source-record.js';
import { toSourceRow } from '../../../shared/data/source-row.js';
import { InputFileError } from '../../../shared/errors.js';
import { ByteTokenizer } from '../../../shared/tokenizer/byte-tokenizer.js';
import { REPO_ROOT, fixture, openRules, scratchDir } from './helpers.js';

// The fixtures come from test/fixtures/data/make-parquet.mjs: one file per column shape and codec.

async function collect(file: string): Promise<ReadItem[]> {
  const out: ReadItem[] = [];
  for await (const item of readSource(file)) out.push(item);
  return out;
}

async function records(file: string): Promise<SourceRecord[]> {
  return (await collect(file)).map((i) => {
    assert.ok(i.ok, 'a Parquet row is always a record');
    return i.record;
  });
}

/** The codec of every column chunk, as the file's footer says: proves the fixture is what its name claims. */
function codecsOf(name: string): string[] {
  const meta = parquetMetadata(readFileSync(fixture(name)));
  return [...new Set(meta.row_groups.flatMap((g) => g.columns.map((c) => c.meta_data!.codec)))];
}

const hasZstd = typeof (zlib as unknown as Record<string, unknown>).zstdDecompressSync === 'function';

test('snappy, title + body + list<string> keyphrases over 3 row groups: rows numbered 1..5 across groups', async () => {
  const name = 'title-body-snappy.parquet';
  assert.deepEqual(codecsOf(name), ['SNAPPY']);
  const meta = parquetMetadata(readFileSync(fixture(name)));
  assert.deepEqual(meta.row_groups.map((g) => Number(g.num_rows)), [2, 2, 1]);
  // The repeated body really is compressed, so the snappy decoder's back-references are exercised.
  const body = meta.row_groups[0]!.columns.find((c) => c.meta_data!.path_in_schema[0] === 'body')!.meta_data!;
  assert.ok(body.total_compressed_size < body.total_uncompressed_size / 2n, `${body.total_compressed_size} < ${body.total_uncompressed_size} / 2`);

  const recs = await records(fixture(name));
  assert.deepEqual(recs.map((r) => r.line), [1, 2, 3, 4, 5]);
  assert.ok(recs.every((r) => r.file === fixture(name)));
  assert.deepEqual(Object.keys(recs[0]!.fields), ['id', 'title', 'body', 'keyphrases']);
  assert.deepEqual(recs[0]!.fields, {
    id: 1,
    title: '전통시장 환급 행사',
    body: '서울시는 3일 시내 전통시장 다섯 곳에서 상품권 환급 행사를 연다고 밝혔다. '.repeat(4),
    keyphrases: ['전통시장', '상품권 환급', '지역화폐'],
  });
  assert.equal(recs[2]!.fields.keyphrases, null);
  assert.deepEqual(recs[3]!.fields.keyphrases, ['버스 노선', '개편']);
  assert.equal(recs[3]!.fields.title, '\uFEFF버스 노선 개편', 'a leading U+FEFF in a value is kept');
  // INT64: a safe integer is a number, 2^53 + 1 keeps its exact digits as a string.
  assert.equal(recs[4]!.fields.id, '9007199254740993');

  const row = toSourceRow(recs[0]!);
  assert.ok(row.ok);
  assert.deepEqual([row.row.shape, row.row.id, row.row.labelField, row.row.label], ['title_body', '1', 'keyphrases', ['전통시장', '상품권 환급', '지역화폐']]);
});

test('uncompressed title + content, gzip title_content, brotli input_text/target_text: each shape is recognised', async () => {
  assert.deepEqual(codecsOf('title-content-uncompressed.parquet'), ['UNCOMPRESSED']);
  assert.deepEqual(codecsOf('title-content-gzip.parquet'), ['GZIP']);
  assert.deepEqual(codecsOf('ready-made-brotli.parquet'), ['BROTLI']);

  const content = await records(fixture('title-content-uncompressed.parquet'));
  assert.deepEqual(content[1]!.fields, {
    id: 'u2',
    title: '해람시 도서관 개관 첫 주',
    content: '해람시 도서관이 문을 열었다. 시장은 "책 읽는 도시"를 만들겠다고 말했다. ',
    keyphrases: '도서관; 개관',
  });
  const v2 = await records(fixture('title-content-gzip.parquet'));
  assert.equal(v2.length, 2);
  assert.ok((v2[0]!.fields.title_content as string).startsWith('올 가을 단풍 구경 배꼽마을 어때요\n충북 옥천군'));
  assert.equal(v2[1]!.fields.keyphrases, '농협은행,ESG경영');
  const ready = await records(fixture('ready-made-brotli.parquet'));
  assert.equal(ready[1]!.fields.target_text, '접두어; 입력');

  const shapes = [content[0]!, v2[0]!, ready[0]!].map((r) => {
    const row = toSourceRow(r);
    assert.ok(row.ok);
    return [row.row.shape, row.row.labelField];
  });
  assert.deepEqual(shapes, [
    ['title_body', 'keyphrases'],
    ['title_content', 'keyphrases'],
    ['input_text', 'target_text'],
  ]);
});

test('zstd: decoded where Node has zstd, else refused up front naming the codec, the column and what to do', async () => {
  const file = fixture('zstd.parquet');
  assert.deepEqual(codecsOf('zstd.parquet'), ['ZSTD']);
  assert.equal(PARQUET_CODECS.includes('ZSTD'), hasZstd);
  if (hasZstd) {
    const recs = await records(file);
    assert.deepEqual(recs.map((r) => r.fields.keyphrases), ['전통시장; 상품권 환급', '도서관; 개관']);
    return;
  }
  await assert.rejects(
    collect(file),
    (e: unknown) =>
      e instanceof InputFileError &&
      e.message.startsWith(`${file}: column "id" is compressed with ZSTD, which kp-coord cannot read (ZSTD needs Node 22.15 or later; this is ${process.version}); readable codecs: UNCOMPRESSED, SNAPPY, GZIP, BROTLI.`) &&
      e.message.includes("compression='snappy'"),
  );
});

test('a file that is not Parquet, or is cut short, fails naming the file', async (t) => {
  const dir = scratchDir(t);
  const text = join(dir, 'rows.parquet');
  writeFileSync(text, '{"title": "not parquet"}\n');
  await assert.rejects(collect(text), (e: unknown) => e instanceof InputFileError && e.message.startsWith(`${text}: not a readable Parquet file (`));
  const cut = join(dir, 'cut.parquet');
  const whole = readFileSync(fixture('title-body-snappy.parquet'));
  writeFileSync(cut, whole.subarray(0, whole.length - 40));
  await assert.rejects(collect(cut), (e: unknown) => e instanceof InputFileError && e.message.startsWith(`${cut}: not a readable Parquet file (`));
  // Page bytes corrupted behind an intact footer: the rows' range is named.
  const garbled = join(dir, 'garbled.parquet');
  const bytes = Buffer.from(whole);
  bytes.fill(0xff, 4, 200);
  writeFileSync(garbled, bytes);
  await assert.rejects(collect(garbled), (e: unknown) => e instanceof InputFileError && e.message.startsWith(`${garbled}:rows 1-2: cannot decode Parquet data (`));
});

// --- through `prepare`, as `kp-coord data prepare` runs it ---

const bytes = new ByteTokenizer();
const text = (a: ArrayLike<number>): string => bytes.decode(a, { skipSpecialTokens: true });
const ids = (split: DataSplit): string[] => Array.from({ length: split.size }, (_, i) => split.source(i).id ?? '');

function prepare(out: string, o: Partial<PrepareOptions>): Promise<PrepareReport> {
  return prepareData({ inputs: [], tokenizer: bytes, tokenizerSpec: 'builtin', rules: openRules(), outDir: out, ...o });
}

test('prepare reads Parquet like JSONL: rows kept, ids and row numbers recorded, texts built', async (t) => {
  const out = join(scratchDir(t), 'cache');
  const r = await prepare(out, { inputs: [fixture('title-body-snappy.parquet'), fixture('title-content-uncompressed.parquet')] });
  assert.deepEqual(r.sources.map((s) => [s.rows_read, s.bad_lines, s.kept]), [[5, 0, 4], [2, 0, 2]]);
  assert.equal(r.dropped.missing_keyphrases, 1);
  const train = openDataCache(out).train;
  assert.deepEqual(ids(train), ['1', '2', '4', '9007199254740993', 'u1', 'u2']);
  assert.deepEqual([train.source(2).line, train.source(3).line], [4, 5]);
  assert.equal(text(train.inputIds(2)), 'generate keyphrases: 버스 노선 개편 해람시가 다음 달부터 시내버스 노선을 개편한다. 출퇴근 시간 배차 간격이 줄어든다.');
  assert.equal(text(train.labelIds(0)), '전통시장; 상품권 환급; 지역화폐');
  assert.equal(text(train.labelIds(5)), '도서관; 개관');
});

test('a bad Parquet row fails as file:row: field; --skip-bad tolerates and lists the rows', async (t) => {
  const dir = scratchDir(t);
  const out = join(dir, 'cache');
  const bad = fixture('bad-rows-snappy.parquet');
  await assert.rejects(
    prepare(out, { inputs: [bad] }),
    (e: unknown) => e instanceof InputFileError && e.message === `${bad}:2: field keyphrases: item 1 of the list is null, expected a string`,
  );
  await assert.rejects(
    prepare(out, { inputs: [bad], skipBad: 1 }),
    (e: unknown) => e instanceof InputFileError && e.message === `${bad}:4: field keyphrases: item 0 of the list is null, expected a string (more than --skip-bad 1 bad lines)`,
  );
  assert.deepEqual(readdirSync(dir), []);
  const r = await prepare(out, { inputs: [bad], skipBad: 2 });
  assert.deepEqual(r.bad_lines.lines.map((b) => [b.line, b.field ?? null]), [[2, 'keyphrases'], [4, 'keyphrases']]);
  assert.deepEqual(ids(openDataCache(out).train), ['ok-1', 'ok-3', 'ok-5']);
});

test('kp-coord data prepare --input x.parquet runs end to end', (t) => {
  const dir = scratchDir(t);
  const main = join(REPO_ROOT, 'dist', 'coordinator', 'cli', 'main.js');
  const args = ['data', 'prepare', '--input', fixture('title-content-gzip.parquet'), '--out', join(dir, 'cache'), '--keyphrase-separator', ','];
  const r = spawnSync(process.execPath, [main, ...args, '--min-input-tokens', 'none', '--eval-ratio', '0'], {
    encoding: 'utf8',
    env: { ...process.env, KPCOORD_LOG_LEVEL: 'warn' },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /read 2 rows from 1 file\(s\); bad lines 0/u);
  const train = openDataCache(join(dir, 'cache')).train;
  assert.deepEqual(ids(train), ['g1', 'g2']);
  assert.equal(text(train.labelIds(1)), '농협은행; ESG경영');
});

test('Parquet: a string that is not UTF-8 makes its row a bad line naming the field; data prepare exits 1 with file:row:field', async (t) => {
  const { parquetWriteBuffer } = await import('hyparquet-writer');
  const dir = scratchDir(t);
  const str = (name: string) => ({ name, type: 'BYTE_ARRAY' as const, converted_type: 'UTF8' as const, repetition_type: 'OPTIONAL' as const });
  // Uncompressed and without a dictionary, so the marker's bytes are in the file as written.
  const body = '서울시가 다음 달부터 시내버스 노선을 개편한다고 밝혔다. '.repeat(30);
  const buf = Buffer.from(parquetWriteBuffer({
    columnData: [
      { name: 'title', data: ['첫째 기사', 'MARK-XYZ', '셋째 기사'], encoding: 'PLAIN' },
      { name: 'body', data: [body, body, body] },
      { name: 'keyphrases', data: ['버스; 노선', '버스; 노선', '버스; 노선'] },
    ],
    schema: [{ name: 'schema', num_children: 3 }, str('title'), str('body'), str('keyphrases')],
    codec: 'UNCOMPRESSED',
  }));
  // The first copy is the data page's; the footer's min/max statistics hold another, which the
  // reader does not use.
  const at = buf.indexOf('MARK-XYZ');
  assert.ok(at > 0);
  Buffer.from([0x4d, 0xea, 0xb0, 0x41]).copy(buf, at); // "M", a truncated Hangul sequence, "A"
  const f = join(dir, 'bad-utf8.parquet');
  writeFileSync(f, buf);
  const items: ReadItem[] = [];
  for await (const item of readSource(f)) items.push(item);
  const got = items.map((i) => (i.ok ? `ok ${i.record.line}` : `${i.bad.line} ${i.bad.field}: ${i.bad.reason}`));
  assert.deepEqual(got, ['ok 1', '2 title: string is not valid UTF-8', 'ok 3']);
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'dist', 'coordinator', 'cli', 'main.js'), 'data', 'prepare', '--input', f, '--out', join(dir, 'cache')], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^kp-coord: .*bad-utf8\.parquet:2: field title: string is not valid UTF-8$/mu);
  assert.deepEqual(readdirSync(dir), ['bad-utf8.parquet']);
});
