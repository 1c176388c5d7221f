import test from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gradRules } from '../../../shared/autodiff/rules.js';

// Every rule in the table must have at least one finite-difference check in this folder: a
// `gradTest('<Op> ...')` call in some test file. Adding a rule without a test fails here.
test('every gradient rule has a finite-difference test', () => {
  const here = dirname(fileURLToPath(import.meta.url));
  const checked = new Set<string>();
  for (const file of readdirSync(here).filter((f) => f.endsWith('.test.js'))) {
    for (const m of readFileSync(`${here}/${file}`, 'utf8').matchAll(/gradTest\(\s*[`'"]([A-Za-z]+)\b/g)) checked.add(m[1]!);
  }
  const untested = Object.keys(gradRules).filter((op) => !checked.has(op));
  assert.deepEqual(untested, [], `rules without a gradTest: ${untested.join(', ')}`);
});
