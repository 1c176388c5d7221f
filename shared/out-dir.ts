import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { OutputPathError } from './errors.js';

// Output folders that appear whole: written into a staging sibling, then renamed into place.
// Where the folder cannot be written is found out before any input is read (a read-only mount,
// /proc, a file in the way), by making and removing a real directory there. Parents are created
// one level at a time, never with mkdir's recursive mode: Node 20's recursive mkdir loops for ever
// on paths under /proc.

/** A fresh staging path beside `outDir` (not created). */
export function stagingPath(outDir: string): string {
  return join(dirname(outDir), `${basename(outDir)}.tmp-${randomBytes(4).toString('hex')}`);
}

/** Create `dir` and any missing parents, one level at a time (bounded by the path's depth). */
export function mkdirParents(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; !existsSync(d); d = dirname(d)) {
    if (dirname(d) === d) break;
    missing.push(d);
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d);
    } catch (cause) {
      const e = cause as NodeJS.ErrnoException;
      if (e.code !== 'EEXIST') throw new OutputPathError(d, `cannot create this folder: ${e.code ?? e.message}`, { cause });
    }
  }
}

/**
 * Fail now, naming `outDir`, if a folder cannot be written there: make and remove a directory in
 * its nearest existing ancestor. Creates nothing that stays.
 */
export function checkWritableParent(outDir: string): void {
  let parent = dirname(outDir);
  while (!existsSync(parent) && dirname(parent) !== parent) parent = dirname(parent);
  if (!statSync(parent).isDirectory()) throw new OutputPathError(outDir, `${parent} is not a folder`);
  const probe = stagingPath(join(parent, basename(outDir)));
  try {
    mkdirSync(probe);
  } catch (cause) {
    const e = cause as NodeJS.ErrnoException;
    throw new OutputPathError(outDir, `cannot write in ${parent}: ${e.code ?? e.message}`, { cause });
  }
  rmdirSync(probe);
}

/**
 * An existing `outDir` that `--overwrite` may replace: an empty folder, or one whose marker file
 * says it is what this command writes (`isOurs`). Anything else (a source tree, a home folder)
 * is refused, however the flag was given.
 */
export function checkReplaceable(outDir: string, what: string, isOurs: (dir: string) => boolean): void {
  const st = statSync(outDir);
  if (!st.isDirectory()) throw new OutputPathError(outDir, `exists and is not a folder; --overwrite replaces only ${what}`);
  if (readdirSync(outDir).length === 0 || isOurs(outDir)) return;
  throw new OutputPathError(outDir, `exists and is not ${what}; --overwrite replaces only ${what} (remove it yourself if you mean it)`);
}
