import { type TokenArray, type TokenDtype } from './cache-format.js';

/**
 * A growable list of token sequences in one typed array (no per-sequence JS arrays: the V4 set is
 * ~58M input tokens, 115 MB as uint16 against ~0.5 GB as number[]).
 */
export class TokenStore {
  private data: TokenArray;
  private used = 0;
  private readonly starts: number[] = [0];

  /** `vocabSize` bounds every id appended: an id outside it is a tokenizer bug, caught here rather than wrapped. */
  constructor(
    readonly dtype: TokenDtype,
    private readonly vocabSize: number,
    initialTokens = 1 << 20,
  ) {
    this.data = dtype === 'uint16' ? new Uint16Array(initialTokens) : new Int32Array(initialTokens);
  }

  get size(): number {
    return this.starts.length - 1;
  }

  get tokens(): number {
    return this.used;
  }

  /** Append one sequence: `ids`, then `suffix` (the eos) when given. */
  append(ids: ArrayLike<number>, suffix?: number): void {
    const n = ids.length + (suffix === undefined ? 0 : 1);
    if (this.used + n > this.data.length) this.grow(this.used + n);
    const d = this.data;
    let p = this.used;
    const limit = this.vocabSize;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!(id >= 0 && id < limit)) throw new RangeError(`token id ${id} is outside the vocabulary (0..${limit - 1})`);
      d[p++] = id;
    }
    if (suffix !== undefined) d[p++] = suffix;
    this.used = p;
    this.starts.push(p);
  }

  length(i: number): number {
    return this.starts[i + 1]! - this.starts[i]!;
  }

  /** A view of sequence i (no copy; valid until the next append). */
  view(i: number): TokenArray {
    return this.data.subarray(this.starts[i]!, this.starts[i + 1]!);
  }

  private grow(need: number): void {
    let cap = this.data.length * 2;
    while (cap < need) cap *= 2;
    const next = this.dtype === 'uint16' ? new Uint16Array(cap) : new Int32Array(cap);
    next.set(this.data.subarray(0, this.used));
    this.data = next;
  }
}
