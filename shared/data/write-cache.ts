import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertLittleEndian, splitFileNames, type SplitManifest, type SplitName, type TokenArray } from './cache-format.js';
import type { TokenStore } from './token-store.js';

/** Where one sample came from (the rows file). */
export interface SampleSource {
  readonly id: string | null;
  readonly file: string;
  readonly line: number;
}

assertLittleEndian();

function writeHashed(dir: string, name: string, bytes: Uint8Array): { name: string; bytes: number; sha256: string } {
  writeFileSync(join(dir, name), bytes);
  return { name, bytes: bytes.byteLength, sha256: createHash('sha256').update(bytes).digest('hex') };
}

function asBytes(a: TokenArray | BigUint64Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Gather the samples `order` (indices into the stores) into one split's files in `dir`. */
export function writeSplit(
  dir: string,
  split: SplitName,
  inputs: TokenStore,
  labels: TokenStore,
  sources: readonly SampleSource[],
  order: readonly number[],
): SplitManifest {
  const names = splitFileNames(split);
  const n = order.length;
  const index = new BigUint64Array(2 * (n + 1));
  let inputTokens = 0;
  let labelTokens = 0;
  for (let k = 0; k < n; k++) {
    inputTokens += inputs.length(order[k]!);
    labelTokens += labels.length(order[k]!);
  }
  const gather = (store: TokenStore, total: number, base: number): TokenArray => {
    const out = store.dtype === 'uint16' ? new Uint16Array(total) : new Int32Array(total);
    let p = 0;
    for (let k = 0; k < n; k++) {
      index[base + k] = BigInt(p);
      const v = store.view(order[k]!);
      out.set(v, p);
      p += v.length;
    }
    index[base + n] = BigInt(p);
    return out;
  };
  const inputIds = gather(inputs, inputTokens, 0);
  const labelIds = gather(labels, labelTokens, n + 1);
  let rows = '';
  for (const i of order) {
    const s = sources[i]!;
    rows += `${JSON.stringify({ id: s.id, file: s.file, line: s.line })}\n`;
  }
  return {
    size: n,
    input_tokens: inputTokens,
    label_tokens: labelTokens,
    files: {
      inputs: writeHashed(dir, names.inputs, asBytes(inputIds)),
      labels: writeHashed(dir, names.labels, asBytes(labelIds)),
      index: writeHashed(dir, names.index, asBytes(index)),
      rows: writeHashed(dir, names.rows, Buffer.from(rows, 'utf8')),
    },
  };
}
