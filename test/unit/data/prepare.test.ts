import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { WorkerPoolEncoder } from '../../../shared/data/batch-encoder.js';
import { openDataCache, type DataSplit } from '../../../shared/data/data-cache.js';
import { prepareData, type PrepareOptions, type PrepareReport } from '../../../shared/data/prepare.js';
import { InputFileError } from '../../../shared/errors.js';
import { ByteTokenizer } from '../../../shared/tokenizer/byte-tokenizer.js';
import { loadTokenizer } from '../../../shared/tokenizer/load-tokenizer.js';
import { resolveRules } from '../../../shared/data/data-rules.js';
import { REPO_ROOT, fixture, openRules, scratchDir } from './helpers.js';

const bytes = new ByteTokenizer();

function prepare(out: string, o: Partial<PrepareOptions> & { rulesOverrides?: Record<string, unknown> } = {}): Promise<PrepareReport> {
  const { rulesOverrides, ...rest } = o;
  return prepareData({ inputs: [fixture('rules-rows.jsonl')], tokenizer: bytes, tokenizerSpec: 'builtin', rules: openRules(rulesOverrides), outDir: out, ...rest });
}

const ids = (split: DataSplit): string[] => Array.from({ length: split.size }, (_, i) => split.source(i).id ?? '');
const text = (a: ArrayLike<number>): string => bytes.decode(a, { skipSpecialTokens: true });

test('each rule drops the crafted rows meant for it, counted under its name', async (t) => {
  const out = join(scratchDir(t), 'cache');
  const r = await prepare(out);
  assert.equal(r.rows_read, 13);
  assert.deepEqual(r.dropped, {
    missing_text: 3,
    missing_keyphrases: 2,
    duplicate_title: 1,
    not_korean: 1,
    empty_keyphrases: 1,
    input_too_short: 0,
    input_too_long: 0,
    target_too_long: 0,
    sequence_too_long: 0,
  });
  // 4 empty pieces in drop-empty-phrases, 1 in keep-messy-phrases; its repeated 전통시장; keep-list-capped's 12 - 10.
  assert.deepEqual(r.keyphrase_cleaning, { empty_removed: 5, duplicates_removed: 1, over_cap_removed: 2 });
  assert.deepEqual(r.kept, { total: 5, train: 5, eval: 0 });
  const cache = openDataCache(out);
  assert.deepEqual(ids(cache.train), ['keep-basic', 'keep-newlines', 'keep-messy-phrases', 'keep-list-capped', 'keep-content-field']);
  assert.equal(cache.eval, undefined);
  assert.equal(text(cache.train.inputIds(1)), 'generate keyphrases: 줄바꿈이 있는 제목 첫 문단이다. 둘째 문단이다. 셋째 문단이다.');
  assert.equal(text(cache.train.labelIds(2)), '전통시장; 상품권 환급; 지역화폐; (주)해람상사');
  assert.equal(text(cache.train.labelIds(3)), '가; 나; 다; 라; 마; 바; 사; 아; 자; 차');
  assert.equal(cache.train.source(4).line, 13);
  const onDisk = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as PrepareReport;
  assert.deepEqual(onDisk.dropped, r.dropped);
  assert.equal(onDisk.lengths.train!.input.count, 5);
});

test('token-length rules: min <= input < max and target < max, eos counted', async (t) => {
  const dir = scratchDir(t);
  await prepare(join(dir, 'open'));
  const all = openDataCache(join(dir, 'open')).train;
  const inLen = Array.from({ length: all.size }, (_, i) => all.inputLength(i));
  const tgtLen = Array.from({ length: all.size }, (_, i) => all.labelLength(i));
  // Stored lengths are the tokenizer's ids plus eos.
  assert.equal(inLen[1], bytes.encode('generate keyphrases: 줄바꿈이 있는 제목 첫 문단이다. 둘째 문단이다. 셋째 문단이다.').length + 1);
  const shortest = Math.min(...inLen);
  const longest = Math.max(...inLen);
  const longestTarget = Math.max(...tgtLen);
  const r = await prepare(join(dir, 'cut'), {
    rulesOverrides: { min_input_tokens: shortest + 1, max_input_tokens: longest, max_target_tokens: longestTarget },
  });
  // The rules apply in order (short, long, target), each row counted under the first that drops it.
  const expectShort = inLen.filter((n) => n < shortest + 1).length;
  const expectLong = inLen.filter((n) => n >= shortest + 1 && n >= longest).length;
  const expectTarget = inLen.filter((n, i) => n >= shortest + 1 && n < longest && tgtLen[i]! >= longestTarget).length;
  assert.deepEqual([r.dropped.input_too_short, r.dropped.input_too_long, r.dropped.target_too_long], [expectShort, expectLong, expectTarget]);
  assert.ok(expectShort >= 1 && expectLong >= 1 && expectTarget >= 1, 'each length rule dropped something');
  assert.equal(r.kept.total, 5 - expectShort - expectLong - expectTarget);
  const kept = openDataCache(join(dir, 'cut')).train;
  for (let i = 0; i < kept.size; i++) {
    assert.ok(kept.inputLength(i) >= shortest + 1 && kept.inputLength(i) < longest && kept.labelLength(i) < longestTarget);
  }
});

test('eval by ratio: ceil(ratio * kept) rows drawn by the seed, the rest train, same seed same split', async (t) => {
  const dir = scratchDir(t);
  const a = await prepare(join(dir, 'a'), { rulesOverrides: { eval_ratio: 0.3, split_seed: 100 } });
  assert.deepEqual(a.kept, { total: 5, train: 3, eval: 2 });
  const b = await prepare(join(dir, 'b'), { rulesOverrides: { eval_ratio: 0.3, split_seed: 100 } });
  const ca = openDataCache(join(dir, 'a'));
  const cb = openDataCache(join(dir, 'b'));
  assert.deepEqual(ids(ca.eval!), ids(cb.eval!));
  assert.deepEqual(b.kept, a.kept);
  const union = [...ids(ca.train), ...ids(ca.eval!)].sort();
  assert.deepEqual(union, ['keep-basic', 'keep-content-field', 'keep-list-capped', 'keep-messy-phrases', 'keep-newlines']);
  // Another seed draws another eval set for at least one of a few seeds (5 choose 2 = 10 sets).
  const others = [];
  for (const seed of [1, 2, 3]) {
    await prepare(join(dir, `s${seed}`), { rulesOverrides: { eval_ratio: 0.3, split_seed: seed } });
    others.push(ids(openDataCache(join(dir, `s${seed}`)).eval!).join());
  }
  assert.ok(others.some((o) => o !== ids(ca.eval!).join()));
});

test('explicit eval files (CSV with BOM and CRLF) form the eval split; the ratio is not used', async (t) => {
  const out = join(scratchDir(t), 'c');
  const r = await prepare(out, { evalFiles: [fixture('rows-bom-crlf.csv')], rulesOverrides: { eval_ratio: 0.5 } });
  assert.deepEqual(r.kept, { total: 8, train: 5, eval: 3 });
  const ev = openDataCache(out).eval!;
  assert.deepEqual(ids(ev), ['c1', 'c2', 'c3']);
  assert.equal(text(ev.inputIds(0)), 'generate keyphrases: 해람시 도서관 개관 해람시 도서관이 문을 열었다. 시장은 "책 읽는 도시"를 만들겠다고 말했다.');
  assert.equal(text(ev.labelIds(1)), '버스 노선; 개편');
  assert.deepEqual(r.sources.map((s) => [s.role, s.rows_read, s.kept]), [['train', 13, 5], ['eval', 3, 3]]);
});

test('V2 shape (title_content, "," labels) and ready-made input_text/target_text', async (t) => {
  const dir = scratchDir(t);
  await prepare(join(dir, 'v2'), { inputs: [fixture('v2-style.jsonl')], rulesOverrides: { keyphrase_separator: ',' } });
  const v2 = openDataCache(join(dir, 'v2')).train;
  assert.equal(text(v2.labelIds(0)), '배꼽마을; 가을단풍; 옥천군; 중심점');
  assert.equal(text(v2.labelIds(1)), '농협은행; ESG경영; 상생경영');
  assert.equal(text(v2.inputIds(2)), 'generate keyphrases: 요소수 대란 국회 운영위 질의 국회 운영위원회에서 요소수 수급 문제가 논의됐다.');
  await prepare(join(dir, 'ready'), { inputs: [fixture('ready-made.jsonl')] });
  const ready = openDataCache(join(dir, 'ready')).train;
  assert.ok(text(ready.inputIds(0)).startsWith('generate keyphrases: 이미 만든 입력 문장이다.'));
  assert.ok(text(ready.inputIds(1)).startsWith('generate keyphrases: 접두어 없이'));
  assert.equal(text(ready.labelIds(1)), '접두어; 입력');
});

function leftovers(dir: string): string[] {
  return readdirSync(dir);
}

test('a malformed line fails with file:line and nothing is left behind; --skip-bad tolerates and lists', async (t) => {
  const dir = scratchDir(t);
  const out = join(dir, 'cache');
  const corrupt = fixture('corrupt.jsonl');
  await assert.rejects(prepare(out, { inputs: [corrupt] }), (e: unknown) => e instanceof InputFileError && e.message.startsWith(`${corrupt}:2: not valid JSON`));
  assert.deepEqual(leftovers(dir), []);
  await assert.rejects(
    prepare(out, { inputs: [corrupt], skipBad: 1 }),
    (e: unknown) => e instanceof InputFileError && e.message === `${corrupt}:4: field title: expected a string or null, got number 12345 (more than --skip-bad 1 bad lines)`,
  );
  assert.deepEqual(leftovers(dir), []);
  const r = await prepare(out, { inputs: [corrupt], skipBad: 2 });
  assert.deepEqual(r.bad_lines.lines.map((b) => [b.line, b.field ?? null]), [[2, null], [4, 'title']]);
  assert.equal(r.bad_lines.allowed, 2);
  assert.equal(r.kept.total, 3);
  assert.deepEqual(leftovers(dir), ['cache']);
});

test('an empty file and wrong field names fail clearly; an existing folder needs overwrite', async (t) => {
  const dir = scratchDir(t);
  const out = join(dir, 'cache');
  await assert.rejects(prepare(out, { inputs: [fixture('empty.jsonl')] }), new RegExp(`empty\\.jsonl: the file is empty \\(no rows\\)`, 'u'));
  await assert.rejects(
    prepare(out, { inputs: [fixture('wrong-fields.jsonl')] }),
    /wrong-fields\.jsonl:1: no text fields: expected title \+ body \(or title \+ content\), title_content, or input_text; found headline, text, tags/u,
  );
  await assert.rejects(prepare(out, { inputs: [join(dir, 'missing.jsonl')] }), /missing\.jsonl: no such file/u);
  assert.deepEqual(leftovers(dir), []);
  mkdirSync(out);
  writeFileSync(join(out, 'old'), 'x');
  await assert.rejects(prepare(out), /already exists; pass --overwrite/u);
  // --overwrite replaces a data cache only: a folder of other files is left alone (#16).
  await assert.rejects(prepare(out, { overwrite: true }), /exists and is not a kp-coord data cache/u);
  assert.ok(existsSync(join(out, 'old')));
  rmSync(out, { recursive: true });
  await prepare(out);
  await prepare(out, { overwrite: true });
  assert.equal(openDataCache(out).train.size, 5);
  assert.deepEqual(leftovers(dir), ['cache']);
});

test('a worker-thread encoder writes the same cache as the inline one', async (t) => {
  const dir = scratchDir(t);
  const spec = fixture('t5-style-tokenizer');
  const tokenizer = loadTokenizer(spec);
  const common = { tokenizer, tokenizerSpec: spec, rulesOverrides: { korean_only: false } };
  await prepare(join(dir, 'inline'), common);
  const pool = await WorkerPoolEncoder.start(spec, tokenizer.fingerprint, 2);
  try {
    await prepare(join(dir, 'pool'), { ...common, encoder: pool });
  } finally {
    await pool.close();
  }
  const a = openDataCache(join(dir, 'inline'), { verifyChecksums: true });
  const b = openDataCache(join(dir, 'pool'), { verifyChecksums: true });
  assert.deepEqual(b.manifest.splits, a.manifest.splits);
  await assert.rejects(WorkerPoolEncoder.start(spec, 'f'.repeat(64), 1), /different tokenizer/u);
});

test('the shipped sample set prepares whole with the embedded-sample preset and the byte tokenizer', async (t) => {
  const sample = join(REPO_ROOT, 'shared', 'datasets', 'ko-news-sample.jsonl');
  if (!existsSync(sample)) {
    t.skip('shared/datasets/ko-news-sample.jsonl is not in this checkout');
    return;
  }
  const out = join(scratchDir(t), 'sample');
  const r = await prepareData({ inputs: [sample], tokenizer: bytes, tokenizerSpec: 'builtin', rules: resolveRules('embedded-sample'), outDir: out });
  assert.equal(r.kept.total, r.rows_read, `every row kept; dropped ${JSON.stringify(r.dropped)}`);
  assert.equal(r.kept.eval, Math.ceil(0.2 * r.rows_read));
  const cache = openDataCache(out);
  assert.ok(cache.train.inputLength(0) <= 1024 && cache.train.labelLength(0) <= 256);
});
