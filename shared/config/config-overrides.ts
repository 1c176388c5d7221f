import { parse as parseYamlValue } from 'yaml';
import type { FieldPath } from './config-text.js';

// `--set key=value` overrides, applied to the config as written, before validation, so an override
// is checked exactly like the same line in the file. Keys are dotted paths
// (zero_optimization.stage=2, data.train_file=x.jsonl); values are read as YAML scalars or flow
// collections, so 1e-3 is a number, true a boolean, [0.9, 0.95] a list; null (or nothing after
// the "=") removes the key, so its default applies.

export interface AppliedOverride {
  readonly path: FieldPath;
  /** The override as given, for messages. */
  readonly text: string;
}

export interface OverrideResult {
  readonly raw: Record<string, unknown>;
  readonly applied: readonly AppliedOverride[];
  /** Overrides that are not key=value, with why. */
  readonly malformed: readonly { readonly text: string; readonly problem: string }[];
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$/u;

/** Apply overrides in order (a later one wins) to a copy of `raw`. */
export function applyOverrides(raw: Record<string, unknown>, overrides: readonly string[]): OverrideResult {
  const out = structuredClone(raw);
  const applied: AppliedOverride[] = [];
  const malformed: { text: string; problem: string }[] = [];
  for (const text of overrides) {
    const eq = text.indexOf('=');
    const key = eq < 0 ? text : text.slice(0, eq).trim();
    if (eq < 0 || !KEY.test(key)) {
      malformed.push({ text, problem: 'expected key=value with a dotted key, e.g. learning_rate=1e-3 or zero_optimization.stage=2' });
      continue;
    }
    let value: unknown;
    try {
      value = parseYamlValue(text.slice(eq + 1));
    } catch (err) {
      malformed.push({ text, problem: `the value is not valid YAML (${(err as Error).message.split('\n')[0]})` });
      continue;
    }
    const path = key.split('.');
    setAt(out, path, value);
    applied.push({ path, text });
  }
  return { raw: out, applied, malformed };
}

// Intermediate values that are not mappings are replaced: `--set data.train_file=x.jsonl` over
// `data: some/cache` switches data to raw files, which is what the override says.
function setAt(root: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = root;
  for (const segment of path.slice(0, -1)) {
    const next = node[segment];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) node[segment] = {};
    node = node[segment] as Record<string, unknown>;
  }
  const last = path[path.length - 1]!;
  if (value === null) delete node[last];
  else node[last] = value;
}
