import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveRules, type DataRules } from '../../../shared/data/data-rules.js';

// Shared by the data tests: where the crafted fixtures are, a scratch folder, and rules with the
// length limits and the split switched off (tests switch on what they test).

/** The repository root: four levels above dist/test/unit/data. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
export const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'data');
export const fixture = (name: string): string => join(FIXTURES, name);

export function scratchDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kp-data-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function openRules(overrides: Record<string, unknown> = {}): DataRules {
  return resolveRules('v4', [{ min_input_tokens: null, max_input_tokens: null, max_target_tokens: null, eval_ratio: 0, ...overrides }]);
}
