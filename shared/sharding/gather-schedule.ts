// [Note: gather schedule] At ZeRO stage 3 an engine pass (one micro-batch's forward+backward, or
// an evaluation forward) is a fixed trace: position i runs one block, which needs the parameter
// units trace[i]. Which units are gathered where, and which are dropped after which position,
// depends only on the trace, the unit sizes and DeepSpeed's stage-3 settings, never on timing, so
// every rank computes the same schedule and the all-gathers match up by their tags, and the
// engine (possibly in another thread) frees exactly what the gathering side accounts for:
//
//   - a unit is gathered at the first position that needs it and does not hold it;
//   - after a position, each unit it used is dropped unless it is used again within
//     stage3_max_reuse_distance elements (DeepSpeed counts the parameters used in between);
//   - persistent units (below stage3_param_persistence_threshold) stay whole on every rank between
//     steps: within a pass they are handed out at their first use and dropped at the pass's end,
//     and never all-gathered by the pass.
//
// Prefetching (stage3_prefetch_bucket_size, stage3_max_live_parameters) only moves a gather
// earlier; it is decided at run time by the gatherer (worker/param-gatherer.ts).

export interface GatherSettings {
  /** Elements the gatherer may have in flight ahead of the current position (0: no prefetch). */
  readonly prefetchBucketSize: number;
  /** Elements of gathered units held or in flight at once; the current position's own units always go. */
  readonly maxLiveParameters: number;
  /** Keep a unit if its next use is within this many elements of other units' use. */
  readonly maxReuseDistance: number;
}

export interface GatherSchedule {
  /** Units position i must receive before it runs (not held then), ascending. */
  readonly fetch: readonly (readonly number[])[];
  /** Units dropped once position i is done. */
  readonly freeAfter: readonly (readonly number[])[];
  /** The most elements of partitioned (gathered) units held at any position, prefetch aside. */
  readonly peakHeld: number;
}

export function gatherSchedule(
  trace: readonly (readonly number[])[],
  size: (unit: number) => number,
  persistent: ReadonlySet<number>,
  settings: GatherSettings,
): GatherSchedule {
  const fetch: number[][] = [];
  const freeAfter: number[][] = trace.map(() => []);
  const held = new Set<number>();
  let peakHeld = 0;
  const heldElements = () => [...held].filter((u) => !persistent.has(u)).reduce((n, u) => n + size(u), 0);
  for (const [i, units] of trace.entries()) {
    fetch.push([...new Set(units)].filter((u) => !held.has(u)).sort((a, b) => a - b));
    for (const u of fetch[i]!) held.add(u);
    peakHeld = Math.max(peakHeld, heldElements());
    for (const u of new Set(units)) {
      if (persistent.has(u)) continue;
      const next = trace.findIndex((t, j) => j > i && t.includes(u));
      if (next >= 0 && distance(trace, i, next, u, size) <= settings.maxReuseDistance) continue;
      freeAfter[i]!.push(u);
      held.delete(u);
    }
  }
  // Persistent units go back with the pass's last position.
  if (trace.length > 0) freeAfter[trace.length - 1]!.push(...[...held].filter((u) => persistent.has(u)));
  for (const f of freeAfter) f.sort((a, b) => a - b);
  return { fetch, freeAfter, peakHeld };
}

/** Elements of the distinct units other than `unit` used strictly between positions i and j. */
function distance(trace: readonly (readonly number[])[], i: number, j: number, unit: number, size: (unit: number) => number): number {
  const between = new Set<number>();
  for (let k = i + 1; k < j; k++) for (const u of trace[k]!) if (u !== unit) between.add(u);
  return [...between].reduce((n, u) => n + size(u), 0);
}
