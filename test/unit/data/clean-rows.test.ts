import assert from 'node:assert/strict';
import test from 'node:test';
import { RowCleaner, type CleanResult } from '../../../shared/data/clean-rows.js';
import type { SourceRow } from '../../../shared/data/source-row.js';
import { openRules } from './helpers.js';

const BODY = '서울시는 3일 시내 전통시장에서 상품권 환급 행사를 연다고 밝혔다.';
let line = 0;
function row(p: Partial<SourceRow>): SourceRow {
  return { file: 'f', line: ++line, id: null, shape: 'title_body', title: '제목', text: BODY, label: '가; 나', labelField: 'keyphrases', ...p };
}
const dropped = (r: CleanResult): string => (r.ok ? 'kept' : r.rule);

test('drop_missing: missing or "None" title, body or label; off lets them through', () => {
  const c = new RowCleaner(openRules());
  assert.equal(dropped(c.clean(row({ title: null }))), 'missing_text');
  assert.equal(dropped(c.clean(row({ title: 'a', text: 'None' }))), 'missing_text');
  assert.equal(dropped(c.clean(row({ title: 'b', text: ' ' }))), 'missing_text');
  assert.equal(dropped(c.clean(row({ title: 'c', label: null }))), 'missing_keyphrases');
  assert.equal(dropped(c.clean(row({ title: 'd', label: 'None' }))), 'missing_keyphrases');
  assert.equal(dropped(c.clean(row({ title: 'e', label: [] }))), 'missing_keyphrases');
  assert.equal(dropped(c.clean(row({ shape: 'title_content', title: null }))), 'kept');
  assert.deepEqual([c.dropped.missing_text, c.dropped.missing_keyphrases], [3, 3]);
  const off = new RowCleaner(openRules({ drop_missing: false }));
  assert.equal(dropped(off.clean(row({ title: null }))), 'kept');
  // With no label at all a row still cannot train: it falls to empty_keyphrases.
  assert.equal(dropped(off.clean(row({ title: 'x', label: null }))), 'empty_keyphrases');
});

test('drop_duplicate_titles keeps the first; rows without a title key on their text; off keeps both', () => {
  const c = new RowCleaner(openRules());
  assert.equal(dropped(c.clean(row({ title: '같은 제목', text: '본문 하나' }))), 'kept');
  assert.equal(dropped(c.clean(row({ title: '같은 제목 ', text: '본문 둘' }))), 'duplicate_title');
  assert.equal(dropped(c.clean(row({ shape: 'title_content', title: null, text: '제목\n본문' }))), 'kept');
  assert.equal(dropped(c.clean(row({ shape: 'title_content', title: null, text: '제목\n본문' }))), 'duplicate_title');
  assert.equal(c.dropped.duplicate_title, 2);
  const off = new RowCleaner(openRules({ drop_duplicate_titles: false }));
  assert.equal(dropped(off.clean(row({ title: '같은 제목' }))), 'kept');
  assert.equal(dropped(off.clean(row({ title: '같은 제목' }))), 'kept');
});

test('whitespace normalisation and title + " " + body, with the input prefix and the target joined by "; "', () => {
  const c = new RowCleaner(openRules());
  const r = c.clean(row({ title: '줄바꿈\n 제목', text: '첫 문단.\n\n둘째   문단.', label: ' 가 ;나;; 가' }));
  assert.ok(r.ok);
  assert.equal(r.example.inputText, 'generate keyphrases: 줄바꿈 제목 첫 문단. 둘째 문단.');
  assert.equal(r.example.targetText, '가; 나');
  const raw = new RowCleaner(openRules({ normalize_whitespace: false, korean_only: false, input_prefix: '', target_separator: ' | ' })).clean(row({ title: 'a\nb', text: 'c  d', label: '가;나' }));
  assert.ok(raw.ok);
  assert.equal(raw.example.inputText, 'a\nb c  d');
  assert.equal(raw.example.targetText, '가 | 나');
});

test('korean_only drops rows under the Hangul share; the threshold and the switch apply', () => {
  const english = row({ title: 'Energy policy', text: 'One of the first jobs is reversing the energy policy.' });
  assert.equal(dropped(new RowCleaner(openRules()).clean(english)), 'not_korean');
  assert.equal(dropped(new RowCleaner(openRules({ korean_only: false })).clean(english)), 'kept');
  const mixed = row({ title: 'AI 기술', text: 'GPT 모델' }); // letters: A I G P T vs 기 술 모 델 -> 4/9
  assert.equal(dropped(new RowCleaner(openRules({ min_hangul_share: 0.5 })).clean(mixed)), 'not_korean');
  assert.equal(dropped(new RowCleaner(openRules({ min_hangul_share: 0.4 })).clean(row({ ...mixed, title: 'AI 기술2' }))), 'kept');
});

test('keyphrase rules: separator, cleaning, cap, and a label that cleans to nothing', () => {
  const c = new RowCleaner(openRules({ keyphrase_separator: ',', max_keyphrases: 3 }));
  const r = c.clean(row({ title: 'k1', label: ',농협은행,ESG경영,상생경영,농협은행,녹색금융,' }));
  assert.ok(r.ok);
  assert.equal(r.example.targetText, '농협은행; ESG경영; 상생경영');
  assert.deepEqual(c.phrases, { empty: 2, duplicate: 1, overCap: 1 });
  assert.equal(dropped(c.clean(row({ title: 'k2', label: ' , ,. ' }))), 'empty_keyphrases');
  // target_text is split on the target separator, whatever the keyphrase separator is.
  const t = c.clean(row({ title: 'k3', shape: 'input_text', labelField: 'target_text', label: 'a, b; c' }));
  assert.ok(t.ok && t.example.targetText === 'a, b; c');
});

test('ready-made input_text keeps its own prefix and gets one when it has none', () => {
  const c = new RowCleaner(openRules({ korean_only: false }));
  const a = c.clean(row({ shape: 'input_text', title: null, text: 'generate keyphrases: 본문' }));
  const b = c.clean(row({ shape: 'input_text', title: null, text: '본문만' }));
  assert.ok(a.ok && b.ok);
  assert.equal(a.example.inputText, 'generate keyphrases: 본문');
  assert.equal(b.example.inputText, 'generate keyphrases: 본문만');
});
