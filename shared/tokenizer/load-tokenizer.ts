import { statSync } from 'node:fs';
import { join } from 'node:path';
import { InputFileError } from '../errors.js';
import { ByteTokenizer } from './byte-tokenizer.js';
import { HfTokenizer } from './hf-tokenizer.js';
import type { Tokenizer } from './tokenizer.js';

/** The spec that names the embedded byte tokenizer. */
export const BUILTIN_TOKENIZER = 'builtin';

/**
 * `'builtin'` -> the embedded ByteTokenizer; a path to a tokenizer.json, or to a folder holding
 * one (a saved HF model or tokenizer folder) -> HfTokenizer.
 */
export function loadTokenizer(spec: string): Tokenizer {
  if (spec === BUILTIN_TOKENIZER) return new ByteTokenizer();
  let isDir: boolean;
  try {
    isDir = statSync(spec).isDirectory();
  } catch (err) {
    throw new InputFileError(spec, '', `no such tokenizer file or folder (give a tokenizer.json, a folder holding one, or "${BUILTIN_TOKENIZER}")`, { cause: err });
  }
  if (!isDir) return HfTokenizer.fromFile(spec);
  const file = join(spec, 'tokenizer.json');
  try {
    statSync(file);
  } catch (err) {
    throw new InputFileError(spec, '', 'the folder holds no tokenizer.json', { cause: err });
  }
  return HfTokenizer.fromFile(file);
}
