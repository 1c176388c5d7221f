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
//
// A frozen base (LoRA) is partitioned the same way (DeepSpeed partitions parameters whether they
// train or not): a second unit sharding and shard, whose units the traces number after the
// trainable ones, gathered and dropped by the same schedule and counted against the same limits.
// It never changes, so its persistent units are gathered once, at setup.

export interface GatherCollective {
  allGather(buf: Float32Array, tag: string): Promise<void>;
}

export interface GathererSettings extends GatherSettings {
  /** Units with fewer elements stay whole on every rank between steps. */
  readonly persistenceThreshold: number;
}

/** One partitioned parameter space: its unit sharding and this rank's shard (shard-buffer layout). */
export interface UnitShards {
  readonly sharding: UnitSharding;
  readonly shard: Float32Array;
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
    /** The frozen base's units and this rank's shard of them (units sharding.units.length + j), or null. */
    readonly frozen: UnitShards | null = null,
  ) {
    if (shard.length !== sharding.shardSize) throw new RangeError(`parameter shard has ${shard.length} elements, the unit sharding ${sharding.shardSize}`);
    if (frozen && frozen.shard.length !== frozen.sharding.shardSize) throw new RangeError(`frozen shard has ${frozen.shard.length} elements, its unit sharding ${frozen.sharding.shardSize}`);
    const count = sharding.units.length + (frozen?.sharding.units.length ?? 0);
    this.persistent = new Set([...Array(count).keys()].filter((u) => this.unitSize(u) < settings.persistenceThreshold));
  }

  /** Elements of unit `u` (trainable, or frozen after them). */
  unitSize(u: number): number {
    const { sharding, local } = this.locate(u);
    const r = sharding.units[local]!;
    return r.hi - r.lo;
  }

  /** All-gather every persistent unit, frozen ones included (at setup). */
  async gatherPersistent(tag: string): Promise<void> {
    await this.gatherWhole([...this.persistent], tag);
  }

  /** All-gather the trainable persistent units again (after every optimizer step; the frozen ones do not change). */
  async refreshPersistent(tag: string): Promise<void> {
    await this.gatherWhole([...this.persistent].filter((u) => u < this.sharding.units.length), tag);
  }

  private async gatherWhole(units: readonly number[], tag: string): Promise<void> {
    await Promise.all(units.map(async (u) => this.whole.set(u, await this.gatherUnit(u, `${tag}/${u}`))));
  }

  /** The schedule of a trace (cached: a trace is one of the engine's two arrays). */
  schedule(trace: readonly (readonly number[])[]): GatherSchedule {
    let s = this.schedules.get(trace);
    if (!s) {
      s = gatherSchedule(trace, (u) => this.unitSize(u), this.persistent, this.settings);
      this.schedules.set(trace, s);
    }
    return s;
  }

  /** The space unit `u` belongs to and its index there. */
  private locate(u: number): UnitShards & { local: number } {
    const t = this.sharding.units.length;
    if (u < t) return { sharding: this.sharding, shard: this.shard, local: u };
    if (!this.frozen || u - t >= this.frozen.sharding.units.length) throw new RangeError(`unit ${u} is in no partitioned space`);
    return { ...this.frozen, local: u - t };
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
    const { sharding, shard, local } = this.locate(unit);
    const piece = sharding.piece(local);
    const buf = new Float32Array(sharding.paddedSize(local));
    buf.set(shard.subarray(piece.at, piece.at + piece.chunk), sharding.rank * piece.chunk);
    const gathered = this.collective.allGather(buf, tag).then(() => buf);
    failpoint(`rank ${this.sharding.rank} gathering ${tag}`);
    return gathered;
  }

  /** A copy of a persistent unit for a pass (the pass may move it to another thread). */
  persistentCopy(unit: number): Float32Array {
    const whole = this.whole.get(unit);
    if (!whole) throw new RangeError(`persistent unit ${unit} has not been gathered (gatherPersistent first)`);
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
    return units.filter((u) => !g.persistent.has(u)).reduce((n, u) => n + g.unitSize(u), 0);
  }
}
