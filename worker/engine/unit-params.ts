import { EngineError } from '../../shared/errors.js';
import type { UnitRange } from '../../shared/sharding/unit-shard.js';

// Where a block engine reads parameters from during one pass: the whole flat buffer (ZeRO stages
// 0-2), or units handed out position by position by a fetcher (stage 3, [Note: gather schedule]).
// The engine calls at(i) before trace position i runs and after(i) when it is done; in between,
// view(offset, size) reads any parameter of the units position i needs.
//
// A frozen base (LoRA) is read the same way from its own flat layout (frozenView): a buffer the
// engine holds whole, or at stage 3 more units of the same passes. Unit indices then run over
// both: the trainable units first (0 .. T-1), the frozen units after them (T + j).

type Flat = Float32Array | Float64Array;

/** What position i receives: the units it needs that are not held yet, and what to drop after it. */
export interface UnitFetch {
  readonly units: ReadonlyMap<number, Float32Array>;
  readonly freeAfter: readonly number[];
}

/** Stage 3's side of a pass (the gatherer, or its proxy in an engine thread). Positions come in order. */
export interface UnitFetcher {
  fetch(position: number): Promise<UnitFetch>;
}

export interface ParamReader {
  at(position: number): Promise<void>;
  after(position: number): void;
  /** The flat range [offset, offset + size) of one trainable parameter, without copying. */
  view(offset: number, size: number): Flat;
  /** The same in the frozen base's flat layout. */
  frozenView(offset: number, size: number): Flat;
}

/** Where the frozen base comes from: a buffer held whole, or units of the fetcher's passes (stage 3). */
export type FrozenSource = { readonly values: Flat } | { readonly units: readonly UnitRange[] } | null;

export function paramReader(source: Flat | UnitFetcher, units: readonly UnitRange[], frozen: FrozenSource): ParamReader {
  const held = frozen && 'values' in frozen ? frozen.values : null;
  if (ArrayBuffer.isView(source)) {
    if (frozen && !held) throw new EngineError('a partitioned frozen base is read through a unit fetcher (ZeRO stage 3), not beside a whole buffer');
    return new FlatReader(source, held);
  }
  return new HeldUnits(source, units, frozen && 'units' in frozen ? frozen.units : [], held);
}

class FlatReader implements ParamReader {
  constructor(
    private readonly flat: Flat,
    private readonly frozen: Flat | null,
  ) {}

  async at(): Promise<void> {}

  after(): void {}

  view(offset: number, size: number): Flat {
    return this.flat.subarray(offset, offset + size);
  }

  frozenView(offset: number, size: number): Flat {
    return frozenSlice(this.frozen, offset, size);
  }
}

function frozenSlice(frozen: Flat | null, offset: number, size: number): Flat {
  if (!frozen) throw new EngineError(`frozen parameter range [${offset}, ${offset + size}) read from a model without a frozen base`);
  return frozen.subarray(offset, offset + size);
}

/** The units a stage-3 pass holds right now (gathered buffers are P_u long; the unit is their head). */
class HeldUnits implements ParamReader {
  private readonly held = new Map<number, Float32Array>();
  private freeAfter: readonly number[] = [];

  constructor(
    private readonly fetcher: UnitFetcher,
    private readonly units: readonly UnitRange[],
    /** The frozen base's units (indices units.length + j), or none. */
    private readonly frozenUnits: readonly UnitRange[],
    /** A frozen base held whole instead. */
    private readonly frozen: Flat | null,
  ) {}

  async at(position: number): Promise<void> {
    const f = await this.fetcher.fetch(position);
    for (const [u, values] of f.units) {
      if (this.held.has(u)) throw new EngineError(`position ${position}: unit ${u} was handed out twice`);
      this.held.set(u, values);
    }
    this.freeAfter = f.freeAfter;
  }

  after(): void {
    for (const u of this.freeAfter) this.held.delete(u);
    this.freeAfter = [];
  }

  view(offset: number, size: number): Flat {
    return this.find(0, this.units, offset, size) ?? missed('parameter', offset, size);
  }

  frozenView(offset: number, size: number): Flat {
    if (this.frozenUnits.length === 0) return frozenSlice(this.frozen, offset, size);
    return this.find(this.units.length, this.frozenUnits, offset, size) ?? missed('frozen parameter', offset, size);
  }

  /** The held unit among `ranges` (indices first + k) holding [offset, offset + size). */
  private find(first: number, ranges: readonly UnitRange[], offset: number, size: number): Flat | null {
    for (const [u, values] of this.held) {
      const r = ranges[u - first];
      if (r && offset >= r.lo && offset + size <= r.hi) return values.subarray(offset - r.lo, offset - r.lo + size);
    }
    return null;
  }
}

function missed(what: string, offset: number, size: number): never {
  throw new EngineError(`${what} range [${offset}, ${offset + size}) is in no unit held now (the gather schedule missed it)`);
}
