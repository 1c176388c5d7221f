import { gatherSchedule, type GatherSchedule, type GatherSettings } from '../shared/sharding/gather-schedule.js';
import type { UnitSharding } from '../shared/sharding/unit-shard.js';
import type { UnitFetch, UnitFetcher } from './engine/unit-params.js';
import { failpoint } from '../shared/failpoint.js';

// ZeRO stage 3's parameter side (see [Note: unit sharding], [Note: gather schedule]). A rank keeps
// its chunk of every unit in its shard buffer. For each engine pass the gatherer all-gathers the
// units the schedule says, as the engine reaches them, and starts the next positions' gathers
// early (prefetch) while it stays within stage3_prefetch_bucket_size elements in flight and
// stage3_max_live_parameters held or in flight. Each gather gets a fresh buffer that it hands to
// the engine for good; the engine drops it after the position the schedule names, and the
// gatherer counts it as gone at the same point. Persistent units (small, below
// stage3_param_persistence_threshold) are kept whole here, gathered once after every optimizer
// step, and handed to each pass as copies.

export interface GatherCollective {
  allGather(buf: Float32Array, tag: string): Promise<void>;
}

export interface GathererSettings extends GatherSettings {
  /** Units with fewer elements stay whole on every rank between steps. */
  readonly persistenceThreshold: number;
}

export class UnitGatherer {
  readonly persistent: ReadonlySet<number>;
  /** Whole values of the persistent units (refreshed after each optimizer step). */
  private readonly whole = new Map<number, Float32Array>();
  private readonly schedules = new Map<readonly (readonly number[])[], GatherSchedule>();
  /** Peak elements of gathered units held or in flight in any pass so far (G in bench/zero's stage-3 formula). */
  peakLive = 0;

  constructor(
    readonly sharding: UnitSharding,
    /** This rank's parameter shard (shard-buffer layout); the optimizer updates it in place. */
    readonly shard: Float32Array,
    private readonly collective: GatherCollective,
    readonly settings: GathererSettings,
  ) {
    if (shard.length !== sharding.shardSize) throw new RangeError(`parameter shard has ${shard.length} elements, the unit sharding ${sharding.shardSize}`);
    this.persistent = new Set(sharding.units.map((u, i) => (u.hi - u.lo < settings.persistenceThreshold ? i : -1)).filter((i) => i >= 0));
  }

  /** All-gather the persistent units from the shards (at setup and after every optimizer step). */
  async refreshPersistent(tag: string): Promise<void> {
    await Promise.all([...this.persistent].map(async (u) => this.whole.set(u, await this.gatherUnit(u, `${tag}/${u}`))));
  }

  /** The schedule of a trace (cached: a trace is one of the engine's two arrays). */
  schedule(trace: readonly (readonly number[])[]): GatherSchedule {
    let s = this.schedules.get(trace);
    if (!s) {
      const { units } = this.sharding;
      s = gatherSchedule(trace, (u) => units[u]!.hi - units[u]!.lo, this.persistent, this.settings);
      this.schedules.set(trace, s);
    }
    return s;
  }

  /** A fetcher for one pass over `trace`; tags are `${tag}/<position>/<unit>`, the same on every rank. */
  pass(trace: readonly (readonly number[])[], tag: string): UnitFetcher {
    return new GatherPass(this, this.schedule(trace), tag);
  }

  /** A pass this rank has no samples for: take part in every gather of it, compute nothing. */
  async skipPass(trace: readonly (readonly number[])[], tag: string): Promise<void> {
    const pass = this.pass(trace, tag);
    for (let i = 0; i < trace.length; i++) await pass.fetch(i);
  }

  /**
   * Every unit gathered in turn into `dest` (the flat buffer, unpadded; null on ranks that only
   * take part): the whole model for saving or keeping the best weights, one unit live at a time.
   */
  async gatherAll(dest: Float32Array | null, tag: string): Promise<void> {
    for (const [u, unit] of this.sharding.units.entries()) {
      const values = this.persistent.has(u) ? this.whole.get(u)! : await this.gatherUnit(u, `${tag}/${u}`);
      dest?.set(values.subarray(0, unit.hi - unit.lo), unit.lo);
    }
  }

  /** One unit's padded buffer, every rank's chunk in place. */
  gatherUnit(unit: number, tag: string): Promise<Float32Array> {
    const piece = this.sharding.piece(unit);
    const buf = new Float32Array(this.sharding.paddedSize(unit));
    buf.set(this.shard.subarray(piece.at, piece.at + piece.chunk), this.sharding.rank * piece.chunk);
    const gathered = this.collective.allGather(buf, tag).then(() => buf);
    failpoint(`rank ${this.sharding.rank} gathering ${tag}`);
    return gathered;
  }

  /** A copy of a persistent unit for a pass (the pass may move it to another thread). */
  persistentCopy(unit: number): Float32Array {
    const whole = this.whole.get(unit);
    if (!whole) throw new RangeError(`persistent unit ${unit} has not been gathered (refreshPersistent first)`);
    return whole.slice();
  }
}

class GatherPass implements UnitFetcher {
  private readonly started = new Map<number, Promise<Map<number, Float32Array>>>();
  /** Positions whose units the engine has let go of (all below the one it asked for last). */
  private done = 0;
  /** The position the engine asks for next. */
  private next = 0;
  private issued = 0;
  private live = 0;

  constructor(
    private readonly gatherer: UnitGatherer,
    private readonly schedule: GatherSchedule,
    private readonly tag: string,
  ) {}

  async fetch(position: number): Promise<UnitFetch> {
    if (position !== this.next) throw new RangeError(`fetch of position ${position}, expected ${this.next}`);
    this.next++;
    this.issue(position);
    const units = await this.started.get(position)!;
    this.started.delete(position);
    return { units, freeAfter: this.schedule.freeAfter[position]! };
  }

  /** Start position `at`'s gathers (and the ones before it), then prefetch as the settings allow. */
  private issue(at: number): void {
    // Asking for `at` means every position before it is done: its drops happen now.
    for (; this.done < at; this.done++) this.live -= this.partitioned(this.schedule.freeAfter[this.done]!);
    const { prefetchBucketSize, maxLiveParameters } = this.gatherer.settings;
    for (; this.issued < this.schedule.fetch.length; this.issued++) {
      const p = this.issued;
      const need = this.partitioned(this.schedule.fetch[p]!);
      if (p > at) {
        const ahead = [...this.started.keys()].filter((q) => q > at).reduce((n, q) => n + this.partitioned(this.schedule.fetch[q]!), 0);
        if (ahead >= prefetchBucketSize || this.live + need > maxLiveParameters) break;
      }
      this.live += need;
      this.gatherer.peakLive = Math.max(this.gatherer.peakLive, this.live);
      const gathering = this.start(p);
      gathering.catch(() => undefined); // a prefetch nobody waits for must not become an unhandled rejection
      this.started.set(p, gathering);
    }
  }

  private async start(position: number): Promise<Map<number, Float32Array>> {
    const g = this.gatherer;
    const units = this.schedule.fetch[position]!;
    const values = await Promise.all(units.map((u) => (g.persistent.has(u) ? g.persistentCopy(u) : g.gatherUnit(u, `${this.tag}/${position}/${u}`))));
    return new Map(units.map((u, k) => [u, values[k]!]));
  }

  private partitioned(units: readonly number[]): number {
    const g = this.gatherer;
    return units.filter((u) => !g.persistent.has(u)).reduce((n, u) => n + g.sharding.units[u]!.hi - g.sharding.units[u]!.lo, 0);
  }
}
