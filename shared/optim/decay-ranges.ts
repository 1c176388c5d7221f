import { OptimizerError } from '../errors.js';

// Which parts of a rank's flat range get weight decay. HF Trainer builds two optimizer groups
// (`get_decay_parameter_names`): decay everything except biases and norm weights. Under ZeRO a rank
// owns [start, end) of the flat buffer, which may cut parameters anywhere, so the groups become a
// short list of sub-ranges of [start, end), each with one decay flag, derived from the global layout.

/** One parameter's place in the flat buffer (what a flat layout lists). */
export interface LayoutEntry {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
}

/** A sub-range [start, end) of the flat buffer (global offsets) whose elements share one decay flag. */
export interface DecayRange {
  readonly start: number;
  readonly end: number;
  readonly decay: boolean;
}

/** Whether a parameter, by its Hugging Face name, gets weight decay. */
export type DecayRule = (parameterName: string) => boolean;

// transformers' `Trainer.get_decay_parameter_names` (4.4x+): a parameter is not decayed when its
// lower-cased full name matches one of these, or it sits in an nn.LayerNorm. Older versions used
// `"bias" not in name` plus ALL_LAYERNORM_LAYERS (which listed T5LayerNorm): same result for T5.
// The nn.LayerNorm test needs module types; for T5 and GPT-NeoX every such module is caught by name
// (`layer_norm`, `final_layer_norm`, `input_layernorm`, `post_attention_layernorm`).
const HF_NO_DECAY_PATTERNS: readonly RegExp[] = [/bias/, /layernorm/, /rmsnorm/, /(?:^|\.)norm(?:$|\.)/, /_norm(?:$|\.)/];

/**
 * HF Trainer's rule. Note the substring match: T5's `relative_attention_bias.weight` is a weight
 * but contains "bias", so HF does not decay it either, and neither do we.
 */
export const hfTrainerDecayRule: DecayRule = (name) => {
  const lower = name.toLowerCase();
  return !HF_NO_DECAY_PATTERNS.some((pattern) => pattern.test(lower));
};

/**
 * Decay every parameter. This is what HF + DeepSpeed does when the DeepSpeed JSON has an
 * `optimizer` section: transformers then hands DeepSpeed one flat parameter group (`DummyOptim`),
 * so `weight_decay` applies to norms and biases too. Use it to reproduce such a run exactly.
 */
export const decayAllRule: DecayRule = () => true;

/**
 * The decay sub-ranges of [start, end), from the layout entries (sorted by offset, not overlapping).
 * Adjacent sub-ranges with the same flag are merged, so the optimizer runs few long loops. Elements
 * covered by no entry (padding between or after parameters) appear in no range: the optimizer
 * leaves them alone.
 */
export function decayRanges(
  entries: readonly LayoutEntry[],
  start: number,
  end: number,
  rule: DecayRule = hfTrainerDecayRule,
): readonly DecayRange[] {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new OptimizerError(`decayRanges: need integers 0 <= start <= end, got [${start}, ${end})`);
  }
  const ranges: DecayRange[] = [];
  let previousEnd = 0;
  for (const entry of entries) {
    const { name, offset, size } = entry;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(size) || offset < 0 || size < 0) {
      throw new OptimizerError(`layout entry ${name}: offset ${offset} and size ${size} must be non-negative integers`);
    }
    if (offset < previousEnd) {
      throw new OptimizerError(`layout entry ${name} at offset ${offset} overlaps or precedes the previous entry (ends at ${previousEnd})`);
    }
    previousEnd = offset + size;
    const lo = Math.max(offset, start);
    const hi = Math.min(offset + size, end);
    if (lo >= hi) continue;
    const decay = rule(name);
    const last = ranges[ranges.length - 1];
    if (last !== undefined && last.end === lo && last.decay === decay) ranges[ranges.length - 1] = { start: last.start, end: hi, decay };
    else ranges.push({ start: lo, end: hi, decay });
  }
  return Object.freeze(ranges.map((r) => Object.freeze(r)));
}

/** Checks that ranges are sorted, disjoint, integer sub-ranges of [start, end); names `what` in errors. */
export function assertRangesWithin(ranges: readonly DecayRange[], start: number, end: number, what: string): void {
  let previousEnd = start;
  for (const r of ranges) {
    if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.end) || r.start < previousEnd || r.end < r.start || r.end > end) {
      throw new OptimizerError(
        `${what}: range [${r.start}, ${r.end}) is not a sorted, disjoint sub-range of [${start}, ${end}) (previous range ends at ${previousEnd})`,
      );
    }
    previousEnd = r.end;
  }
}
