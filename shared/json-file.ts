import { readFileSync } from 'node:fs';
import { InputFileError } from './errors.js';

/** Read and parse a JSON file; errors name the file (and what it was meant to be). */
export function readJsonFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new InputFileError(path, '', `cannot read ${what}`, { cause });
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new InputFileError(path, '', `not valid JSON: ${(cause as Error).message}`, { cause });
  }
}
