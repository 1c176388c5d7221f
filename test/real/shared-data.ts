import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** ../shared/data beside the repository (the repo root is two levels above dist/test/real). */
export function sharedDataDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const root = resolve(here, '..', '..', '..');
  const dir = join(root, '..', 'shared', 'data');
  if (!existsSync(dir)) throw new Error(`the real-data suite needs ${dir} (../shared/data beside the repository)`);
  return dir;
}
