/** Summary of a list of sequence lengths for report.json; percentiles interpolate linearly (numpy's default). */
export interface LengthStats {
  readonly count: number;
  readonly mean: number;
  readonly min: number;
  readonly p5: number;
  readonly p25: number;
  readonly p50: number;
  readonly p75: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

export function lengthStats(lengths: ArrayLike<number>): LengthStats {
  const n = lengths.length;
  if (n === 0) return { count: 0, mean: 0, min: 0, p5: 0, p25: 0, p50: 0, p75: 0, p95: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(lengths).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  const q = (p: number): number => {
    const pos = (p / 100) * (n - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(lo + 1, n - 1);
    return Math.round((sorted[lo]! + (pos - lo) * (sorted[hi]! - sorted[lo]!)) * 100) / 100;
  };
  return {
    count: n,
    mean: Math.round((sum / n) * 100) / 100,
    min: sorted[0]!,
    p5: q(5),
    p25: q(25),
    p50: q(50),
    p75: q(75),
    p95: q(95),
    p99: q(99),
    max: sorted[n - 1]!,
  };
}
