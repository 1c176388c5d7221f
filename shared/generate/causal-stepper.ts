import { gatherBlocks, isIdentity, type DecoderStepper } from './decoder-stepper.js';
import { positionIds } from '../models/neox-family.js';
import type { NeoXDecodingSessions } from './neox-decoding-sessions.js';

// DecoderSteppers of a decoder-only model (GPT-NeoX) over rows [items, beams]. The prompts come
// left-padded (HF's padding_side='left' for generation): every row's last prompt token sits in the
// last column, so one graph run scores every row's next token. Position ids are HF generate's,
// cumsum(mask) - 1 (1 on padding), so a row's tokens are numbered from its first real one whatever
// its padding.
//
// The first next() is the prompt's forward pass (the prefill): its `tokens` (the search's start
// tokens) are not fed, since a decoder-only model continues the prompt itself. Every later next()
// feeds one new token per row.

/** Prompts padded on the left to the longest: ids and mask [items, len]. */
export interface LeftPaddedPrompts {
  readonly items: number;
  readonly len: number;
  readonly ids: Int32Array;
  readonly mask: Int32Array;
}

/** Left-pad `prompts` with `padId` to the longest. */
export function leftPad(prompts: readonly ArrayLike<number>[], padId: number): LeftPaddedPrompts {
  const items = prompts.length;
  const len = Math.max(...prompts.map((p) => p.length));
  const ids = new Int32Array(items * len).fill(padId);
  const mask = new Int32Array(items * len);
  prompts.forEach((p, i) => {
    const start = i * len + len - p.length;
    ids.set(p, start);
    mask.fill(1, start, (i + 1) * len);
  });
  return { items, len, ids, mask };
}

/** Row r of [items * beams] copies item floor(r / beams). */
function beamRows(items: number, beams: number): number[] {
  return Array.from({ length: items * beams }, (_, r) => Math.floor(r / beams));
}

/** [rows, len] -> [rows, len + 1] with `column` appended to each row. */
function appendColumn(a: Int32Array, rows: number, len: number, column: (r: number) => number): Int32Array {
  const out = new Int32Array(rows * (len + 1));
  for (let r = 0; r < rows; r++) {
    out.set(a.subarray(r * len, (r + 1) * len), r * (len + 1));
    out[r * (len + 1) + len] = column(r);
  }
  return out;
}

/**
 * Decoding with the key/value cache: the prompts run once, one row per item; their keys/values
 * are then copied to each item's beams, and every step feeds one token per row with the past.
 * Reordering is done in JS ([Note: reordering in JS]).
 */
export class CachedCausalStepper implements DecoderStepper {
  private keys: Float32Array[] = [];
  private values: Float32Array[] = [];
  /** [rows, pastLen]: the prompt's mask, then 1 per generated token. */
  private mask: Int32Array;
  /** Real tokens so far per row: the next token's position id. */
  private counts: Int32Array;
  private pastLen = 0;
  private itemCount: number;
  private started = false;

  constructor(
    private readonly sessions: NeoXDecodingSessions,
    private readonly prompts: LeftPaddedPrompts,
    readonly beams: number,
  ) {
    this.itemCount = prompts.items;
    this.mask = prompts.mask;
    this.counts = new Int32Array(0);
  }

  get items(): number {
    return this.itemCount;
  }

  async next(tokens: Int32Array): Promise<Float32Array> {
    if (!this.started) return this.prefill();
    const rows = this.itemCount * this.beams;
    if (tokens.length !== rows) throw new RangeError(`next: ${tokens.length} tokens for ${rows} rows`);
    const mask = appendColumn(this.mask, rows, this.pastLen, () => 1);
    const r = await this.sessions.step({
      rows, newLen: 1, pastLen: this.pastLen, tokens, attentionMask: mask, positionIds: Int32Array.from(this.counts),
      pastKeys: this.keys, pastValues: this.values, present: true,
    });
    this.mask = mask;
    for (let i = 0; i < rows; i++) this.counts[i]!++;
    this.keys = r.presentKeys;
    this.values = r.presentValues;
    this.pastLen++;
    return r.logProbs;
  }

  select(items: ArrayLike<number>, rows: ArrayLike<number>): void {
    const oldRows = this.itemCount * this.beams;
    this.itemCount = items.length;
    if (isIdentity(rows, oldRows)) return;
    const { numHeads: H, headSize: D } = this.sessions.config;
    const block = H * this.pastLen * D;
    this.keys = this.keys.map((k) => gatherBlocks(k, block, rows));
    this.values = this.values.map((v) => gatherBlocks(v, block, rows));
    this.mask = gatherBlocks(this.mask, this.pastLen, rows);
    this.counts = gatherBlocks(this.counts, 1, rows);
  }

  private async prefill(): Promise<Float32Array> {
    const p = this.prompts;
    const r = await this.sessions.step({
      rows: p.items, newLen: p.len, pastLen: 0, tokens: p.ids, attentionMask: p.mask, positionIds: positionIds(p.mask, p.items, p.len),
      pastKeys: [], pastValues: [], present: true,
    });
    this.started = true;
    this.pastLen = p.len;
    const counts = Int32Array.from({ length: p.items }, (_, i) => p.mask.subarray(i * p.len, (i + 1) * p.len).reduce((n, m) => n + m, 0));
    if (this.beams === 1) {
      this.keys = r.presentKeys;
      this.values = r.presentValues;
      this.counts = counts;
      return r.logProbs;
    }
    const from = beamRows(p.items, this.beams);
    const { numHeads: H, headSize: D } = this.sessions.config;
    const block = H * p.len * D;
    this.keys = r.presentKeys.map((k) => gatherBlocks(k, block, from));
    this.values = r.presentValues.map((v) => gatherBlocks(v, block, from));
    this.mask = gatherBlocks(p.mask, p.len, from);
    this.counts = gatherBlocks(counts, 1, from);
    return gatherBlocks(r.logProbs, this.sessions.config.vocabSize, from);
  }
}

/**
 * Decoding without a cache (HF use_cache=False): every step runs the model over the whole left-padded
 * prompt and the tokens generated so far. For the cache = no-cache test.
 */
export class UncachedCausalStepper implements DecoderStepper {
  /** [rows, len]: each row's prompt (its item's) and generated tokens. */
  private ids: Int32Array;
  private mask: Int32Array;
  private len: number;
  private itemCount: number;
  private started = false;

  constructor(
    private readonly sessions: NeoXDecodingSessions,
    prompts: LeftPaddedPrompts,
    readonly beams: number,
  ) {
    const from = beamRows(prompts.items, beams);
    this.ids = gatherBlocks(prompts.ids, prompts.len, from);
    this.mask = gatherBlocks(prompts.mask, prompts.len, from);
    this.len = prompts.len;
    this.itemCount = prompts.items;
  }

  get items(): number {
    return this.itemCount;
  }

  async next(tokens: Int32Array): Promise<Float32Array> {
    const rows = this.itemCount * this.beams;
    if (this.started) {
      if (tokens.length !== rows) throw new RangeError(`next: ${tokens.length} tokens for ${rows} rows`);
      this.ids = appendColumn(this.ids, rows, this.len, (r) => tokens[r]!);
      this.mask = appendColumn(this.mask, rows, this.len, () => 1);
      this.len++;
    }
    this.started = true;
    const r = await this.sessions.step({
      rows, newLen: this.len, pastLen: 0, tokens: this.ids, attentionMask: this.mask, positionIds: positionIds(this.mask, rows, this.len),
      pastKeys: [], pastValues: [], present: false,
    });
    return r.logProbs;
  }

  select(items: ArrayLike<number>, rows: ArrayLike<number>): void {
    this.itemCount = items.length;
    this.ids = gatherBlocks(this.ids, this.len, rows);
    this.mask = gatherBlocks(this.mask, this.len, rows);
  }
}
