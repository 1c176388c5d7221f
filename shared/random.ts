// Seeded, counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC'11; the generator behind PyTorch's CUDA RNG and Random123).
//
// [Note: why counter-based] A stream is a pure function of (seed, keys, position): word i of the stream
// `rngStream(seed, k1, k2, ...)` is the same on every machine, in every process, whatever was drawn
// before it elsewhere. So dropout masks keyed by (seed, step, sample) and initial weights keyed by
// (seed, parameter index) come out identical for any number of workers or threads, and any part of a
// stream can be produced without the parts before it (`seek`).
//
// Layout of one Philox block: key = the seed's two 32-bit halves; counter = (block low, block high,
// stream id low, stream id high), where the stream id is a 64-bit hash of the integer keys computed
// with Philox itself. Each block yields 4 words; word w of a stream is word (w mod 4) of block w/4.
// Distinct key tuples under one seed collide with probability about n^2 / 2^65 for n streams.

const PHILOX_M0 = 0xd2511f53;
const PHILOX_M1 = 0xcd9e8d57;
const PHILOX_W0 = 0x9e3779b9; // golden ratio
const PHILOX_W1 = 0xbb67ae85; // sqrt(3) - 1
const TWO_POW_32 = 4294967296;
const TWO_POW_MINUS_32 = 1 / TWO_POW_32;
const TWO_POW_MINUS_24 = 2 ** -24;
const TWO_POW_MINUS_53 = 2 ** -53;
const TWO_PI = 2 * Math.PI;

/** Key-space tags so that streams of different purposes never share a key tuple by accident. */
export const RngDomain = Object.freeze({
  /** Parameter initialisation: rngStream(seed, RngDomain.init, paramIndex). */
  init: 1,
  /** Dropout masks: rngStream(seed, RngDomain.dropout, step, sampleIndex, ...). */
  dropout: 2,
});

const M0_HI = PHILOX_M0 >>> 16;
const M0_LO = PHILOX_M0 & 0xffff;
const M1_HI = PHILOX_M1 >>> 16;
const M1_LO = PHILOX_M1 & 0xffff;

/**
 * Philox4x32 with 10 rounds of counter (c0..c3) under key (k0, k1); writes the 4 output words to
 * out[at..at+3]. Inputs are uint32 (int32 bit patterns work too). The high half of each 32x32-bit
 * product is assembled from 16-bit partial products so every step stays in exact int32/double
 * arithmetic (a plain double product of two uint32s loses the low bits).
 */
export function philox4x32(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  out: Uint32Array,
  at = 0,
): void {
  c0 |= 0;
  c1 |= 0;
  c2 |= 0;
  c3 |= 0;
  k0 |= 0;
  k1 |= 0;
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + PHILOX_W0) | 0;
      k1 = (k1 + PHILOX_W1) | 0;
    }
    let h = c0 >>> 16;
    let l = c0 & 0xffff;
    let lh = M0_LO * h;
    let hl = M0_HI * l;
    let mid = ((M0_LO * l) >>> 16) + (lh & 0xffff) + (hl & 0xffff);
    const hi0 = (M0_HI * h + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) | 0;
    const lo0 = Math.imul(PHILOX_M0, c0);
    h = c2 >>> 16;
    l = c2 & 0xffff;
    lh = M1_LO * h;
    hl = M1_HI * l;
    mid = ((M1_LO * l) >>> 16) + (lh & 0xffff) + (hl & 0xffff);
    const hi1 = (M1_HI * h + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) | 0;
    const lo1 = Math.imul(PHILOX_M1, c2);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  out[at] = c0;
  out[at + 1] = c1;
  out[at + 2] = c2;
  out[at + 3] = c3;
}

function checkKey(what: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${what} must be a non-negative safe integer, got ${value}`);
  }
}

const low32 = (v: number): number => v % TWO_POW_32 >>> 0;
const high32 = (v: number): number => Math.floor(v / TWO_POW_32) >>> 0;

/** Words generated per batch by the bulk fills (a multiple of 4; 16 KiB of scratch). */
const BATCH_WORDS = 4096;

/** A position-addressable stream of random words; see the note at the top of this file. */
export class RngStream {
  private readonly block = new Uint32Array(4);
  /** Index of the block currently held in `block`; -1 when none is. */
  private blockIndex = -1;
  /** Index of the next word to hand out. */
  private word = 0;
  private scratch: Uint32Array | undefined;

  constructor(
    private readonly keyLo: number,
    private readonly keyHi: number,
    private readonly streamLo: number,
    private readonly streamHi: number,
  ) {}

  /** Number of words consumed so far (the position `seek` takes). */
  get position(): number {
    return this.word;
  }

  /** Jump to word `position`; the stream then continues exactly as if that many words had been drawn. */
  seek(position: number): void {
    checkKey('position', position);
    this.word = position;
  }

  nextU32(): number {
    const b = Math.floor(this.word / 4);
    if (b !== this.blockIndex) {
      philox4x32(low32(b), high32(b), this.streamLo, this.streamHi, this.keyLo, this.keyHi, this.block);
      this.blockIndex = b;
    }
    return this.block[this.word++ % 4]!;
  }

  /** The next dest.length words, generated a whole block at a time. */
  fillU32(dest: Uint32Array): void {
    const n = dest.length;
    let i = 0;
    while (i < n && this.word % 4 !== 0) dest[i++] = this.nextU32();
    // Now at a block boundary (or done): whole blocks go straight into dest.
    for (; i + 4 <= n; i += 4) {
      const b = this.word / 4;
      philox4x32(low32(b), high32(b), this.streamLo, this.streamHi, this.keyLo, this.keyHi, dest, i);
      this.word += 4;
    }
    while (i < n) dest[i++] = this.nextU32();
  }

  /** Uniform double in [0, 1) with 53 random bits; consumes 2 words. */
  uniform(): number {
    const a = this.nextU32() >>> 5; // 27 bits
    const b = this.nextU32() >>> 6; // 26 bits
    return (a * 67108864 + b) * TWO_POW_MINUS_53;
  }

  /** Standard normal by Box-Muller (the cosine half); consumes 2 words. */
  normal(): number {
    const r = Math.sqrt(-2 * Math.log((this.nextU32() + 0.5) * TWO_POW_MINUS_32));
    return r * Math.cos(TWO_PI * this.nextU32() * TWO_POW_MINUS_32);
  }

  /**
   * Fill with mean + std * N(0,1). Element pairs (2i, 2i+1) come from one Box-Muller transform of
   * words (2i, 2i+1) counted from the current position (cosine half, sine half), so a fill of n
   * elements consumes 2 * ceil(n / 2) words and matches `normal()` on even elements.
   * u1 = (w + 0.5) / 2^32 is never 0, so the log is finite (|z| < 6.7).
   */
  fillNormal(dest: Float32Array | Float64Array, mean = 0, std = 1): void {
    const words = (this.scratch ??= new Uint32Array(BATCH_WORDS));
    const n = dest.length;
    for (let start = 0; start < n; start += BATCH_WORDS) {
      const count = Math.min(BATCH_WORDS, n - start);
      const batch = count % 2 === 0 ? words.subarray(0, count) : words.subarray(0, count + 1);
      this.fillU32(batch);
      for (let j = 0; j < count; j += 2) {
        const r = std * Math.sqrt(-2 * Math.log((batch[j]! + 0.5) * TWO_POW_MINUS_32));
        const theta = TWO_PI * batch[j + 1]! * TWO_POW_MINUS_32;
        dest[start + j] = mean + r * Math.cos(theta);
        if (j + 1 < count) dest[start + j + 1] = mean + r * Math.sin(theta);
      }
    }
  }

  /**
   * Fill with uniform values in [lo, hi); one word per element with 24 random bits, so that even in
   * float32 a value never rounds up to 1 (a dropout mask keeps an element when u >= p).
   */
  fillUniform(dest: Float32Array | Float64Array, lo = 0, hi = 1): void {
    const words = (this.scratch ??= new Uint32Array(BATCH_WORDS));
    const span = hi - lo;
    for (let start = 0; start < dest.length; start += BATCH_WORDS) {
      const batch = words.subarray(0, Math.min(BATCH_WORDS, dest.length - start));
      this.fillU32(batch);
      for (let j = 0; j < batch.length; j++) dest[start + j] = lo + span * ((batch[j]! >>> 8) * TWO_POW_MINUS_24);
    }
  }
}

/**
 * The stream for (seed, ...keys). Seed and keys are non-negative safe integers; the same arguments
 * always give the same stream, and any change to them gives an unrelated one.
 */
export function rngStream(seed: number, ...keys: number[]): RngStream {
  checkKey('seed', seed);
  const keyLo = low32(seed);
  const keyHi = high32(seed);
  // Hash the keys into the 64-bit stream id by chaining Philox under a key distinct from the
  // generator's (xor with constants), then absorb the key count so (k) and (k, 0) differ.
  const hashKeyLo = (keyLo ^ 0x5851f42d) >>> 0;
  const hashKeyHi = (keyHi ^ 0x4c957f2d) >>> 0;
  const out = new Uint32Array(4);
  let h0 = 0;
  let h1 = 0;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    checkKey(`key ${i}`, k);
    philox4x32(low32(k), high32(k), h0, h1, hashKeyLo, hashKeyHi, out);
    h0 = out[0]!;
    h1 = out[1]!;
  }
  philox4x32(keys.length, 0xffffffff, h0, h1, hashKeyLo, hashKeyHi, out);
  return new RngStream(keyLo, keyHi, out[0]!, out[1]!);
}
