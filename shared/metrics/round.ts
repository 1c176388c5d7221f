// Scores are reported x100 and rounded to 4 places the way Python's round() does it: correctly
// rounded from the exact binary value, ties to even. toFixed() is also correctly rounded but
// breaks exact ties upward, so ties (e.g. 0.03125 -> 0.0312 in Python) are handled here.

/** Round a finite number to `places` decimals like Python's round(x, places). */
export function roundLikePython(x: number, places: number): number {
  if (!Number.isFinite(x) || Math.abs(x) >= 1e15) return x;
  const fixed = Math.abs(x).toFixed(places);
  // toFixed(100) prints the exact decimal expansion of any double of moderate size: a tie is
  // a 5 right after the kept digits followed only by zeros.
  const exact = Math.abs(x).toFixed(100);
  const dot = exact.indexOf('.');
  const rest = exact.slice(dot + 1 + places);
  let result = Number(fixed);
  if (/^50*$/.test(rest)) {
    const truncated = exact.slice(0, dot + 1 + places);
    const lastDigit = Number(truncated[truncated.length - 1] === '.' ? truncated[truncated.length - 2] : truncated[truncated.length - 1]);
    result = lastDigit % 2 === 0 ? Number(truncated) : Number(fixed);
  }
  return x < 0 ? -result : result;
}

/** A fraction in [0, 1] as a percentage rounded to 4 places (the team's reporting format). */
export function percent4(fraction: number): number {
  return roundLikePython(fraction * 100, 4);
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) return 0;
  let sum = 0;
  for (const v of values) sum += v; // left to right, like Python's sum(): same float result
  return sum / values.length;
}
