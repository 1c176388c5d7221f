import { paddedFlatSize } from './flat-shard.js';

// [Note: unit sharding] ZeRO stage 3 (FSDP's flat parameters, DeepSpeed's partitioned params):
// the flat buffer is cut into parameter units, contiguous ranges that one block (or one HF module)
// uses together, and EACH unit is sharded N ways: unit u is padded to P_u, a multiple of
// N x SHARD_ALIGN, and rank r owns its chunk [r P_u/N, (r+1) P_u/N). Gathering a block is then
// one all-gather of its unit over the ring, every rank sending (N-1)/N of it, instead of a
// broadcast from the one or two ranks a whole-buffer range would give it to.
//
// A rank keeps its chunks of all units one after another (units in flat order) in one shard
// buffer of sum_u P_u/N elements: parameters, gradients and Adam moments all use that layout. A
// chunk's padding tail (zeros) belongs to no parameter, like the flat buffer's padding.

export interface UnitRange {
  readonly lo: number;
  readonly hi: number;
}

/** Rank r's chunk of one unit. */
export interface UnitPiece {
  /** Index of the unit in the units the sharding was made from. */
  readonly unit: number;
  /** Where the chunk starts in the shard buffer; it is `chunk` elements long. */
  readonly at: number;
  readonly chunk: number;
  /** The real elements it holds: flat range [lo, hi) (may be empty), at shard offset `at`. */
  readonly lo: number;
  readonly hi: number;
}

export class UnitSharding {
  /** Rank `rank`'s pieces, in flat (= shard buffer) order. */
  readonly pieces: readonly UnitPiece[];
  /** Elements of one rank's shard buffer (the same on every rank). */
  readonly shardSize: number;
  private readonly byUnit: readonly UnitPiece[];

  constructor(
    readonly units: readonly UnitRange[],
    readonly world: number,
    readonly rank: number,
  ) {
    if (!Number.isSafeInteger(world) || world < 1 || !Number.isSafeInteger(rank) || rank < 0 || rank >= world) throw new RangeError(`UnitSharding: rank ${rank} of ${world}`);
    const order = units.map((_, i) => i).sort((a, b) => units[a]!.lo - units[b]!.lo);
    const byUnit: UnitPiece[] = new Array(units.length);
    let at = 0;
    for (const i of order) {
      const u = units[i]!;
      if (!(u.hi > u.lo && u.lo >= 0)) throw new RangeError(`UnitSharding: unit ${i} is [${u.lo}, ${u.hi})`);
      const chunk = this.paddedSize(i) / world;
      const lo = Math.min(u.lo + rank * chunk, u.hi);
      byUnit[i] = Object.freeze({ unit: i, at, chunk, lo, hi: Math.min(lo + chunk, u.hi) });
      at += chunk;
    }
    this.byUnit = byUnit;
    this.pieces = Object.freeze(order.map((i) => byUnit[i]!));
    this.shardSize = at;
  }

  /** P_u: the unit's length padded to a multiple of world x SHARD_ALIGN (what one all-gather moves). */
  paddedSize(unit: number): number {
    const u = this.units[unit]!;
    return paddedFlatSize(u.hi - u.lo, this.world);
  }

  piece(unit: number): UnitPiece {
    return this.byUnit[unit]!;
  }

  /** The real flat ranges this rank owns, in shard order (a checkpoint file's ranges). */
  ownedRanges(): { start: number; end: number }[] {
    return this.pieces.filter((p) => p.hi > p.lo).map((p) => ({ start: p.lo, end: p.hi }));
  }

  /** The real elements of `piece` in a shard-layout buffer (flat range [piece.lo, piece.hi)), not copied. */
  owned(shardBuffer: Float32Array, piece: UnitPiece): Float32Array {
    return shardBuffer.subarray(piece.at, piece.at + piece.hi - piece.lo);
  }

  /** Copy this rank's real elements out of a shard-layout buffer, in `ownedRanges` order. */
  packOwned(shardBuffer: Float32Array): Float32Array {
    const out = new Float32Array(this.pieces.reduce((n, p) => n + p.hi - p.lo, 0));
    let k = 0;
    for (const p of this.pieces) {
      out.set(this.owned(shardBuffer, p), k);
      k += p.hi - p.lo;
    }
    return out;
  }
}
