import { rngStream } from '../../shared/random.js';

// Deterministic per-rank buffers for collective tests and the benchmark, the same in every process.
// Content is uneven on purpose: each (rank, range) pair has its own power-of-two scale (2^-6 .. 2^6)
// and sign mix, so summation order visibly changes rounding and an order mistake cannot hide.

const RANDOM_BLOCK = 1 << 20;

/** Rank `rank`'s contribution: uniform [-1, 1) from Philox(seed, rank), tiled past 2^20 floats. */
export function rankBuffer(seed: number, rank: number, world: number, length: number): Float32Array {
  const buf = new Float32Array(length);
  rngStream(seed, 0xc011, rank).fillUniform(buf.subarray(0, Math.min(length, RANDOM_BLOCK)), -1, 1);
  for (let at = RANDOM_BLOCK; at < length; at += RANDOM_BLOCK) buf.copyWithin(at, 0, Math.min(RANDOM_BLOCK, length - at));
  const range = length / world;
  for (let k = 0; k < world; k++) {
    const scale = 2 ** (((rank * 3 + k * 5) % 13) - 6);
    const part = buf.subarray(k * range, (k + 1) * range);
    for (let i = 0; i < part.length; i++) part[i] = part[i]! * scale;
  }
  return buf;
}

/**
 * The float32 sum of range `owner` exactly as the ring documents it (ring-collective.ts, note on
 * summation order): ranks owner+1, owner+2, ..., owner (mod N), left to right, rounded each time.
 */
export function ringOrderSum(inputs: readonly Float32Array[], start: number, end: number, owner: number): Float32Array {
  const world = inputs.length;
  const out = inputs[(owner + 1) % world]!.slice(start, end);
  for (let j = 2; j <= world; j++) {
    const x = inputs[(owner + j) % world]!;
    for (let i = 0; i < out.length; i++) out[i] = out[i]! + x[start + i]!;
  }
  return out;
}

/** Float64 sum over ranks and the sum of magnitudes (for the rounding bound). */
export function float64Sum(inputs: readonly Float32Array[]): { sum: Float64Array; abs: Float64Array } {
  const n = inputs[0]!.length;
  const sum = new Float64Array(n);
  const abs = new Float64Array(n);
  for (const x of inputs) {
    for (let i = 0; i < n; i++) {
      sum[i] += x[i]!;
      abs[i] += Math.abs(x[i]!);
    }
  }
  return { sum, abs };
}
