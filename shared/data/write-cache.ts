import { createHash } from 'node:crypto';
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
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

/** Tokens gathered per write: bounds the extra memory of writing a split (a copy of it would be 115 MB for V4). */
const CHUNK_TOKENS = 1 << 20;

/**
 * Write the sequences `order` of `store` back to back into `file`, hashing as it goes; fills
 * `index[base .. base + n]` with their start offsets and the total.
 */
function writeTokens(file: string, store: TokenStore, order: readonly number[], index: BigUint64Array, base: number): { bytes: number; sha256: string } {
  const hash = createHash('sha256');
  const chunk = store.dtype === 'uint16' ? new Uint16Array(CHUNK_TOKENS) : new Int32Array(CHUNK_TOKENS);
  const fd = openSync(file, 'w');
  let bytes = 0;
  try {
    let used = 0;
    const flush = (): void => {
      const b = asBytes(chunk.subarray(0, used));
      for (let done = 0; done < b.byteLength; ) done += writeSync(fd, b, done);
      hash.update(b);
      bytes += b.byteLength;
      used = 0;
    };
    let offset = 0;
    for (let k = 0; k < order.length; k++) {
      index[base + k] = BigInt(offset);
      const v = store.view(order[k]!);
      offset += v.length;
      for (let p = 0; p < v.length; ) {
        const take = Math.min(v.length - p, CHUNK_TOKENS - used);
        chunk.set(v.subarray(p, p + take), used);
        used += take;
        p += take;
        if (used === CHUNK_TOKENS) flush();
      }
    }
    index[base + order.length] = BigInt(offset);
    flush();
  } finally {
    closeSync(fd);
  }
  return { bytes, sha256: hash.digest('hex') };
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
  const inputFile = writeTokens(join(dir, names.inputs), inputs, order, index, 0);
  const labelFile = writeTokens(join(dir, names.labels), labels, order, index, n + 1);
  let rows = '';
  for (const i of order) {
    const s = sources[i]!;
    rows += `${JSON.stringify({ id: s.id, file: s.file, line: s.line })}\n`;
  }
  const width = inputs.dtype === 'uint16' ? 2 : 4;
  return {
    size: n,
    input_tokens: inputFile.bytes / width,
    label_tokens: labelFile.bytes / width,
    files: {
      inputs: { name: names.inputs, ...inputFile },
      labels: { name: names.labels, ...labelFile },
      index: writeHashed(dir, names.index, asBytes(index)),
      rows: writeHashed(dir, names.rows, Buffer.from(rows, 'utf8')),
    },
  };
}
