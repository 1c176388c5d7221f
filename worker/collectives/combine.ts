import type { Combine } from './chunk-transport.js';

/**
 * Apply one received piece to `target` starting at element `offset`. 'sum' adds element by
 * element, so a chunk's result is the same however the transport cut it into pieces.
 */
export function combineInto(target: Float32Array, offset: number, piece: Float32Array, combine: Combine): void {
  if (combine === 'assign') {
    target.set(piece, offset);
    return;
  }
  // Unrolled by 4: V8 runs this about 1.5x faster than the plain loop (~0.7-0.9 vs ~0.5 G floats/s
  // on this machine), and on the reduce-scatter path the add competes with the network for the core.
  const dst = target.subarray(offset, offset + piece.length);
  const n = piece.length;
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    dst[i] += piece[i]!;
    dst[i + 1] += piece[i + 1]!;
    dst[i + 2] += piece[i + 2]!;
    dst[i + 3] += piece[i + 3]!;
  }
  for (; i < n; i++) dst[i] += piece[i]!;
}
