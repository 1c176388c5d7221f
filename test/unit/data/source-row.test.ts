import assert from 'node:assert/strict';
import test from 'node:test';
import { toSourceRow } from '../../../shared/data/source-row.js';

const at = (fields: Record<string, unknown>) => toSourceRow({ file: 'f.jsonl', line: 7, fields });

test('the three text shapes and both label fields', () => {
  const a = at({ id: 5, title: 't', body: 'b', keyphrases: 'x; y' });
  assert.ok(a.ok);
  assert.deepEqual(a.row, { file: 'f.jsonl', line: 7, id: '5', shape: 'title_body', title: 't', text: 'b', label: 'x; y', labelField: 'keyphrases' });
  const b = at({ title: 't', content: 'c', keyphrases: ['x'] });
  assert.ok(b.ok && b.row.shape === 'title_body' && b.row.text === 'c' && b.row.id === null);
  const c = at({ title_content: 'tc', keyphrases: null });
  assert.ok(c.ok && c.row.shape === 'title_content' && c.row.title === null && c.row.label === null);
  const d = at({ input_text: 'in', target_text: 'a; b' });
  assert.ok(d.ok && d.row.shape === 'input_text' && d.row.labelField === 'target_text');
});

test('wrong field names: the error says which fields were expected and which were found', () => {
  const r = at({ headline: 'h', text: 'b', tags: [] });
  assert.ok(!r.ok);
  assert.equal(r.bad.reason, 'no text fields: expected title + body (or title + content), title_content, or input_text; found headline, text, tags');
  const s = at({ title: 't', body: 'b', tags: 'x' });
  assert.ok(!s.ok);
  assert.equal(s.bad.reason, 'no label field: expected keyphrases or target_text; found title, body, tags');
  assert.equal(s.bad.line, 7);
});

test('wrong field types name the field', () => {
  const r = at({ title: 12345, body: 'b', keyphrases: 'k' });
  assert.ok(!r.ok);
  assert.deepEqual(r.bad, { file: 'f.jsonl', line: 7, field: 'title', reason: 'expected a string or null, got number 12345' });
  const s = at({ title: 't', body: 'b', keyphrases: ['a', 3] });
  assert.ok(!s.ok && s.bad.field === 'keyphrases' && s.bad.reason === 'item 1 of the list is number 3, expected a string');
  const u = at({ input_text: 'i', target_text: ['a'] });
  assert.ok(!u.ok && u.bad.field === 'target_text' && /expected a string, got a list/u.test(u.bad.reason));
});
