// [Note: flat sharding] All trainable parameters form one flat buffer of Ψ elements (HF order).
// It is padded to Ψ' = a multiple of world * ALIGN so every rank owns an equal contiguous range
// [r Ψ'/N, (r+1) Ψ'/N). Gradients and Adam moments use the same ranges, whatever the ZeRO
// stage: a stage only decides which of those buffers a rank keeps whole and which only its range
// of (see sharding-policy.ts). Padding elements are zero, belong to no parameter, and the
// optimizer never touches them.

/** Ranges start on 16-element (64-byte) boundaries: cache lines, and SIMD-friendly slices. */
export const SHARD_ALIGN = 16;

export interface FlatShard {
  readonly rank: number;
  readonly world: number;
  /** Ψ: real elements. */
  readonly size: number;
  /** Ψ': padded length, a multiple of world * SHARD_ALIGN. */
  readonly paddedSize: number;
  /** Elements per rank (Ψ'/N). */
  readonly shardSize: number;
  /** This rank's range [start, end). */
  readonly start: number;
  readonly end: number;
}

export function paddedFlatSize(size: number, world: number): number {
  const unit = world * SHARD_ALIGN;
  return Math.ceil(size / unit) * unit;
}

export function flatShard(size: number, world: number, rank: number): FlatShard {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`flatShard: size ${size}`);
  if (!Number.isSafeInteger(world) || world < 1) throw new RangeError(`flatShard: world ${world}`);
  if (!Number.isSafeInteger(rank) || rank < 0 || rank >= world) throw new RangeError(`flatShard: rank ${rank} of ${world}`);
  const paddedSize = paddedFlatSize(size, world);
  const shardSize = paddedSize / world;
  return Object.freeze({ rank, world, size, paddedSize, shardSize, start: rank * shardSize, end: (rank + 1) * shardSize });
}

/** The range rank `r` owns, for any rank (the collectives need everyone's). */
export function rankRange(shard: FlatShard, r: number): { start: number; end: number } {
  return { start: r * shard.shardSize, end: (r + 1) * shard.shardSize };
}
