import { EngineError } from '../../shared/errors.js';
import type { UnitRange } from '../../shared/sharding/unit-shard.js';

// Where a block engine reads parameters from during one pass: the whole flat buffer (ZeRO stages
// 0-2), or units handed out position by position by a fetcher (stage 3, [Note: gather schedule]).
// The engine calls at(i) before trace position i runs and after(i) when it is done; in between,
// view(offset, size) reads any parameter of the units position i needs.

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
  /** The flat range [offset, offset + size) of one parameter, without copying. */
  view(offset: number, size: number): Flat;
}

export function paramReader(source: Flat | UnitFetcher, units: readonly UnitRange[]): ParamReader {
  return ArrayBuffer.isView(source) ? new FlatReader(source) : new HeldUnits(source, units);
}

class FlatReader implements ParamReader {
  constructor(private readonly flat: Flat) {}

  async at(): Promise<void> {}

  after(): void {}

  view(offset: number, size: number): Flat {
    return this.flat.subarray(offset, offset + size);
  }
}

/** The units a stage-3 pass holds right now (gathered buffers are P_u long; the unit is their head). */
class HeldUnits implements ParamReader {
  private readonly held = new Map<number, Float32Array>();
  private freeAfter: readonly number[] = [];

  constructor(
    private readonly fetcher: UnitFetcher,
    private readonly units: readonly UnitRange[],
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
    for (const [u, values] of this.held) {
      const { lo, hi } = this.units[u]!;
      if (offset >= lo && offset + size <= hi) return values.subarray(offset - lo, offset - lo + size);
    }
    throw new EngineError(`parameter range [${offset}, ${offset + size}) is in no unit held now (the gather schedule missed it)`);
  }
}
