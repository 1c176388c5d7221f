import type { EncodedSources, EncoderDecoderSessions } from './seq2seq-sessions.js';

// A decoder that turns one more token per row into next-token log-probabilities, over rows laid
// out [items, beams]. Search code (greedy, beam) sees only this interface, so the same search runs
// with the key/value cache or without it, and tests can wrap a stepper to record its outputs.
//
// [Note: reordering in JS] After each step the search says which old row each new row continues
// (`select`): beam search reorders beams within an item, and items that are finished are dropped
// (their rows cost compute otherwise; HF keeps feeding them pad tokens). The cache is reordered here
// in JS by copying each kept row's contiguous block [heads, len, d_kv]: it is the same copy a Gather
// in the graph would make, it is skipped entirely when the order is unchanged (greedy, and beams that
// keep their places), and the step graph stays free of an index input. The cross-attention
// keys/values are per item, not per beam, so they are copied only when items drop out.

export interface DecoderStepper {
  readonly beams: number;
  /** Items in the batch now (rows = items * beams). */
  readonly items: number;
  /**
   * Feed one token per row ([items, beams]); returns next-token log-probabilities [items, beams, vocab], the caller's to modify.
   * A decoder-only stepper's first call runs the prompt instead and ignores `tokens` (causal-stepper.ts).
   */
  next(tokens: Int32Array): Promise<Float32Array>;
  /**
   * Continue with old items `items` (in this order) and, as new row r, the state of old row
   * `rows[r]`; rows of new item i must belong to old item items[i].
   */
  select(items: ArrayLike<number>, rows: ArrayLike<number>): void;
}

/** out block r = src block from[r], blocks of `block` elements. */
export function gatherBlocks<A extends Float32Array | Int32Array>(src: A, block: number, from: ArrayLike<number>): A {
  const out = new (src.constructor as new (n: number) => A)(from.length * block);
  for (let r = 0; r < from.length; r++) {
    const f = from[r]!;
    out.set(src.subarray(f * block, (f + 1) * block), r * block);
  }
  return out;
}

export function isIdentity(order: ArrayLike<number>, size: number): boolean {
  if (order.length !== size) return false;
  for (let i = 0; i < size; i++) if (order[i] !== i) return false;
  return true;
}

/** The encoder side of the items kept. */
function selectSources(kvWidth: number, s: EncodedSources, items: ArrayLike<number>): EncodedSources {
  if (isIdentity(items, s.items)) return s;
  const block = kvWidth * s.srcLen;
  return {
    items: items.length,
    srcLen: s.srcLen,
    attentionMask: gatherBlocks(s.attentionMask, s.srcLen, items),
    crossKeys: s.crossKeys.map((k) => gatherBlocks(k, block, items)),
    crossValues: s.crossValues.map((v) => gatherBlocks(v, block, items)),
  };
}

/** Decoding with the key/value cache: each step feeds one token per row and the past keys/values. */
export class CachedStepper implements DecoderStepper {
  private keys: Float32Array[] = [];
  private values: Float32Array[] = [];
  private pastLen = 0;

  constructor(
    private readonly sessions: EncoderDecoderSessions,
    private sources: EncodedSources,
    readonly beams: number,
  ) {}

  get items(): number {
    return this.sources.items;
  }

  async next(tokens: Int32Array): Promise<Float32Array> {
    const r = await this.sessions.step({
      beams: this.beams,
      stepLen: 1,
      pastLen: this.pastLen,
      tokens,
      sources: this.sources,
      pastKeys: this.keys,
      pastValues: this.values,
      present: true,
    });
    this.keys = r.presentKeys;
    this.values = r.presentValues;
    this.pastLen++;
    return r.logProbs;
  }

  select(items: ArrayLike<number>, rows: ArrayLike<number>): void {
    const oldRows = this.sources.items * this.beams;
    this.sources = selectSources(this.sessions.kvWidth, this.sources, items);
    if (isIdentity(rows, oldRows)) return;
    const block = this.sessions.kvWidth * this.pastLen;
    this.keys = this.keys.map((k) => gatherBlocks(k, block, rows));
    this.values = this.values.map((v) => gatherBlocks(v, block, rows));
  }
}

/**
 * Decoding without a cache (HF use_cache=False): every step runs the decoder over the whole prefix
 * (the same step graph with no past), so step t costs t positions. For the equality test and the
 * benchmark's cache/no-cache ratio.
 */
export class UncachedStepper implements DecoderStepper {
  /** [rows, len] tokens fed so far, the start token first. */
  private history = new Int32Array(0);
  private len = 0;

  constructor(
    private readonly sessions: EncoderDecoderSessions,
    private sources: EncodedSources,
    readonly beams: number,
  ) {}

  get items(): number {
    return this.sources.items;
  }

  async next(tokens: Int32Array): Promise<Float32Array> {
    const rows = this.sources.items * this.beams;
    const grown = new Int32Array(rows * (this.len + 1));
    for (let r = 0; r < rows; r++) {
      grown.set(this.history.subarray(r * this.len, (r + 1) * this.len), r * (this.len + 1));
      grown[r * (this.len + 1) + this.len] = tokens[r]!;
    }
    this.history = grown;
    this.len++;
    const r = await this.sessions.step({
      beams: this.beams,
      stepLen: this.len,
      pastLen: 0,
      tokens: this.history,
      sources: this.sources,
      pastKeys: [],
      pastValues: [],
      present: false,
    });
    return r.logProbs;
  }

  select(items: ArrayLike<number>, rows: ArrayLike<number>): void {
    this.sources = selectSources(this.sessions.kvWidth, this.sources, items);
    this.history = gatherBlocks(this.history, this.len, rows);
  }
}
