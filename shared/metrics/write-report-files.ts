import { randomBytes } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { KpCoordError } from '../errors.js';

// Writes PREFIX.json and PREFIX.md so that neither is ever seen half-written: both go to temp
// files in the same directory first (rename is atomic only within one file system), and are
// renamed into place only after both writes have succeeded.

export function writeReportFiles(prefix: string, json: string, markdown: string): { json: string; markdown: string } {
  const targets = { json: `${prefix}.json`, markdown: `${prefix}.md` };
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const temps = { json: `${targets.json}.tmp-${tag}`, markdown: `${targets.markdown}.tmp-${tag}` };
  try {
    writeFileSync(temps.json, json);
    writeFileSync(temps.markdown, markdown);
    renameSync(temps.json, targets.json);
    renameSync(temps.markdown, targets.markdown);
  } catch (cause) {
    rmSync(temps.json, { force: true });
    rmSync(temps.markdown, { force: true });
    throw new KpCoordError(`cannot write ${targets.json} and ${targets.markdown}: ${(cause as Error).message}`, { cause });
  }
  return targets;
}
