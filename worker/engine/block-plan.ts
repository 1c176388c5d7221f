import type { BlockInstance } from '../../shared/models/model-family.js';
import type { FlatLayout } from '../../shared/weights/flat-layout.js';

// A model's plan (ModelFamily.blockPlan) lists block instances in forward order, each fed its own
// parameters and its activations from named streams: a block reads streams and writes one. In the
// backward a stream's gradient is the sum over the blocks that read it, complete by the time the
// block that wrote it runs (readers come later in forward order, so earlier in the backward).
//
// Gradient units: the contiguous ranges of the flat buffer whose gradients are complete after a
// given block's backward (DeepSpeed's "ready" partitions). Parameters are grouped by HF module
// (ModelFamily.moduleOf: T5's shared embedding, each T5Block, ...); a group is complete after the
// last block of the backward that uses one of its parameters, i.e. its first user in forward
// order. In HF parameter order the units then come out from the end of the flat buffer to its
// start, which lets ZeRO-2 bucket them into contiguous pieces.

export type { BlockInstance } from '../../shared/models/model-family.js';

export interface GradientUnit {
  /** Flat range [lo, hi). */
  readonly lo: number;
  readonly hi: number;
  /** Index of the block whose backward completes it. */
  readonly block: number;
  /** Flat parameter names in it, in layout order. */
  readonly params: readonly string[];
}

/** The gradient units in the order the backward completes them; checks they tile the layout. */
export function gradientUnits(plan: readonly BlockInstance[], layout: FlatLayout, moduleOf: (name: string) => string): GradientUnit[] {
  const firstUser = new Map<string, number>();
  plan.forEach((b, i) => {
    for (const name of b.params.values()) if (!firstUser.has(name)) firstUser.set(name, i);
  });
  const missing = layout.params.find((p) => !firstUser.has(p.name));
  if (missing) throw new RangeError(`parameter ${missing.name} is used by no block`);
  // A module's gradients are complete after the backward of the first block (forward order) using any of them.
  const completedBy = new Map<string, number>();
  for (const p of layout.params) {
    const m = moduleOf(p.name);
    completedBy.set(m, Math.min(completedBy.get(m) ?? Infinity, firstUser.get(p.name)!));
  }
  const units: GradientUnit[] = [];
  for (let i = plan.length - 1; i >= 0; i--) {
    const names = layout.params.filter((p) => completedBy.get(moduleOf(p.name)) === i);
    if (names.length === 0) continue;
    const lo = names[0]!.offset;
    const hi = names.at(-1)!.offset + names.at(-1)!.size;
    if (names.reduce((n, p) => n + p.size, 0) !== hi - lo) throw new RangeError(`block ${plan[i]!.label}: the gradients it completes are not contiguous in the flat layout`);
    units.push({ lo, hi, block: i, params: names.map((p) => p.name) });
  }
  units.forEach((u, k) => {
    const next = units[k + 1];
    if (next && next.hi !== u.lo) throw new RangeError(`gradient units of ${plan[u.block]!.label} and ${plan[next.block]!.label} do not come out end to start`);
  });
  if (units.at(-1)?.lo !== 0 || units[0]?.hi !== layout.totalSize) throw new RangeError('gradient units do not cover the flat layout');
  return units;
}

/**
 * The units (indices into `units`, plus `first`) each position of a pass needs ([Note: gather
 * schedule]): a training pass runs the forward of every block but the head (whose forward runs
 * inside its backward), then the backward of every block from the head down (a block without a
 * backward session, `runsBackward` false, keeps its position and needs nothing there); an
 * evaluation pass every block's forward. A frozen base's units (LoRA at stage 3) are traced the
 * same way over its own layout, numbered after the trainable ones (`first`).
 */
export function passTraces(
  plan: readonly BlockInstance[],
  units: readonly { readonly lo: number; readonly hi: number }[],
  layout: FlatLayout,
  runsBackward: (block: number) => boolean = () => true,
  first = 0,
): { train: number[][]; eval: number[][] } {
  const unitsOf = plan.map((b) =>
    [...new Set([...b.params.values()].filter((name) => layout.has(name)).map((name) => {
      const offset = layout.get(name).offset;
      return first + units.findIndex((u) => offset >= u.lo && offset < u.hi);
    }))].sort((a, b) => a - b),
  );
  const forwards = plan.map((_, k) => k).filter((k) => plan[k]!.output !== null);
  const backwards = plan.map((_, k) => plan.length - 1 - k);
  return {
    train: [...forwards.map((k) => unitsOf[k]!), ...backwards.map((k) => (runsBackward(k) ? unitsOf[k]! : []))],
    eval: plan.map((_, k) => unitsOf[k]!),
  };
}

/**
 * The traces of an engine's passes: the trainable units', joined position by position with a
 * partitioned frozen base's (numbered after them) when there is one.
 */
export function engineTraces(
  plan: readonly BlockInstance[],
  trainable: { readonly units: readonly { readonly lo: number; readonly hi: number }[]; readonly layout: FlatLayout },
  frozen: { readonly units: readonly { readonly lo: number; readonly hi: number }[]; readonly layout: FlatLayout } | null,
  runsBackward: (block: number) => boolean,
): { train: number[][]; eval: number[][] } {
  const own = passTraces(plan, trainable.units, trainable.layout, runsBackward);
  if (!frozen) return own;
  const base = passTraces(plan, frozen.units, frozen.layout, runsBackward, trainable.units.length);
  const join = (a: number[][], b: number[][]) => a.map((units, i) => [...units, ...b[i]!]);
  return { train: join(own.train, base.train), eval: join(own.eval, base.eval) };
}
