import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveRules } from '../../shared/data/data-rules.js';
import { prepareData } from '../../shared/data/prepare.js';
import { ByteTokenizer } from '../../shared/tokenizer/byte-tokenizer.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const SAMPLE_SET = join(REPO_ROOT, 'shared', 'datasets', 'ko-news-sample.jsonl');

/** The shipped sample set prepared with the byte tokenizer into a fresh temp dir (byte lengths capped). */
export async function prepareSampleCache(overrides: Record<string, unknown> = {}): Promise<string> {
  if (!existsSync(SAMPLE_SET)) throw new Error(`missing ${SAMPLE_SET}`);
  const out = join(mkdtempSync(join(tmpdir(), 'kp-sample-')), 'cache');
  await prepareData({
    inputs: [SAMPLE_SET],
    tokenizer: new ByteTokenizer(),
    tokenizerSpec: 'builtin',
    rules: resolveRules('embedded-sample', [overrides]),
    outDir: out,
  });
  return out;
}
