import assert from 'node:assert/strict';
import test from 'node:test';
import { DataRules, resolveRules } from '../../../shared/data/data-rules.js';
import { InputFileError } from '../../../shared/errors.js';

test('defaults are the V4 recipe', () => {
  const r = resolveRules('v4');
  assert.deepEqual(r, DataRules.parse({}));
  assert.equal(r.input_prefix, 'generate keyphrases: ');
  assert.equal(r.target_separator, '; ');
  assert.deepEqual([r.min_input_tokens, r.max_input_tokens, r.max_target_tokens, r.max_keyphrases], [500, 1000, 64, 10]);
  assert.deepEqual([r.eval_ratio, r.split_seed], [0.2, 100]);
  assert.ok(Object.isFrozen(r));
});

test('preset, then overrides in order; null switches a limit off', () => {
  const r = resolveRules('embedded-sample', [{ max_input_tokens: 2048 }, { max_input_tokens: null, keyphrase_separator: ',' }]);
  assert.equal(r.max_input_tokens, null);
  assert.equal(r.min_input_tokens, null);
  assert.equal(r.keyphrase_separator, ',');
});

test('bad rules list every bad field and name their source', () => {
  assert.throws(
    () => resolveRules('v4', [{ eval_ratio: 1.5, max_keyphrases: 0, min_hangul_share: 'x', max_input_token: 5 }], 'rules.yaml'),
    (e: unknown) =>
      e instanceof InputFileError &&
      e.message.startsWith('rules.yaml: bad rules: ') &&
      ['eval_ratio', 'max_keyphrases', 'min_hangul_share', 'max_input_token'].every((f) => e.message.includes(f)),
  );
  assert.throws(() => resolveRules('v9'), /unknown rules preset "v9"; known: v4, embedded-sample/u);
});
