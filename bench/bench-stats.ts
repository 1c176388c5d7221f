// Small pieces every engine bench uses: a timing summary and a positive-integer option.

export interface Timing {
  readonly medianMs: number;
  readonly minMs: number;
}

/** Median and fastest of some runs' milliseconds. */
export function timing(ms: readonly number[]): Timing {
  const sorted = [...ms].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const medianMs = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { medianMs, minMs: sorted[0]! };
}

/** `--name` as a positive integer (undefined when not given); a RangeError names the option. */
export function positiveOption(name: string, s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isInteger(n) || n <= 0) throw new RangeError(`--${name} must be a positive integer, got '${s}'`);
  return n;
}
