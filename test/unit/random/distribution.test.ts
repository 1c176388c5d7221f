import assert from 'node:assert/strict';
import test from 'node:test';
import { rngStream } from '../../../shared/random.js';

// Statistical checks on N = 2^20 draws. Each tolerance is 6 standard errors of the statistic for a
// true generator (computed from the distribution's moments in each comment), so a correct generator
// fails with probability ~1e-9 per check, while a biased one (a wrong constant, a lost bit, a
// broken transform) is off by far more.
const N = 2 ** 20;
const SIX = 6;

function moments(x: Float64Array): { mean: number; variance: number } {
  let sum = 0;
  for (const v of x) sum += v;
  const mean = sum / x.length;
  let sq = 0;
  for (const v of x) sq += (v - mean) ** 2;
  return { mean, variance: sq / (x.length - 1) };
}

test('uniform(): mean 1/2, variance 1/12, flat histogram, no lag-1 correlation', () => {
  const s = rngStream(2024, 1);
  const x = new Float64Array(N);
  for (let i = 0; i < N; i++) x[i] = s.uniform();
  const { mean, variance } = moments(x);
  // se(mean) = sqrt(1/12 / N) = 2.8e-4
  assert.ok(Math.abs(mean - 0.5) < SIX * Math.sqrt(1 / 12 / N), `mean ${mean}`);
  // se(variance) = sqrt((mu4 - sigma^4) / N) with mu4 = 1/80, sigma^4 = 1/144: 7.3e-5
  assert.ok(Math.abs(variance - 1 / 12) < SIX * Math.sqrt((1 / 80 - 1 / 144) / N), `variance ${variance}`);
  // Pearson chi-square over 64 bins has 63 degrees of freedom: mean 63, sd sqrt(126) = 11.2.
  const bins = new Float64Array(64);
  for (const v of x) bins[Math.floor(v * 64)]!++;
  const expected = N / 64;
  const chi2 = bins.reduce((a, c) => a + (c - expected) ** 2 / expected, 0);
  assert.ok(Math.abs(chi2 - 63) < SIX * Math.sqrt(126), `chi-square ${chi2}`);
  // Lag-1 autocorrelation of independent draws: se = 1/sqrt(N).
  let c = 0;
  for (let i = 1; i < N; i++) c += (x[i]! - mean) * (x[i - 1]! - mean);
  const rho = c / (N - 1) / variance;
  assert.ok(Math.abs(rho) < SIX / Math.sqrt(N), `lag-1 correlation ${rho}`);
});

test('every bit of nextU32 is set half of the time', () => {
  const s = rngStream(9);
  const ones = new Float64Array(32);
  for (let i = 0; i < N; i++) {
    const w = s.nextU32();
    for (let b = 0; b < 32; b++) ones[b]! += (w >>> b) & 1;
  }
  // Frequency of a fair bit: se = 0.5 / sqrt(N) = 4.9e-4.
  for (let b = 0; b < 32; b++) assert.ok(Math.abs(ones[b]! / N - 0.5) < SIX * 0.5 / Math.sqrt(N), `bit ${b}: ${ones[b]! / N}`);
});

test('fillNormal: mean 0, variance 1, normal tails and kurtosis', () => {
  const x = new Float64Array(N);
  rngStream(77, 3).fillNormal(x);
  const { mean, variance } = moments(x);
  assert.ok(Math.abs(mean) < SIX / Math.sqrt(N), `mean ${mean}`); // se = 1/sqrt(N) = 9.8e-4
  assert.ok(Math.abs(variance - 1) < SIX * Math.sqrt(2 / N), `variance ${variance}`); // se = sqrt(2/N) = 1.4e-3
  // Two-sided tail masses P(|z| > 2) = 0.0455003, P(|z| > 3) = 0.0026998; se = sqrt(p(1-p)/N).
  for (const [k, p] of [
    [2, 0.04550026389635842],
    [3, 0.0026997960632601866],
  ] as const) {
    const frac = x.reduce((a, v) => a + (Math.abs(v) > k ? 1 : 0), 0) / N;
    assert.ok(Math.abs(frac - p) < SIX * Math.sqrt((p * (1 - p)) / N), `P(|z|>${k}) = ${frac}`);
  }
  // E[z^4] = 3 with Var(z^4) = E[z^8] - 9 = 105 - 9 = 96: se = sqrt(96/N) = 9.6e-3.
  const m4 = x.reduce((a, v) => a + v ** 4, 0) / N;
  assert.ok(Math.abs(m4 - 3) < SIX * Math.sqrt(96 / N), `fourth moment ${m4}`);
  // The sine and cosine halves of each Box-Muller pair are independent: correlation se = 1/sqrt(N/2).
  let c = 0;
  for (let i = 0; i < N; i += 2) c += x[i]! * x[i + 1]!;
  assert.ok(Math.abs(c / (N / 2)) < SIX / Math.sqrt(N / 2), `pair correlation ${c / (N / 2)}`);
});

test('streams with neighbouring keys or seeds are uncorrelated', () => {
  const base = new Float64Array(N);
  rngStream(100, 5, 0).fillNormal(base);
  for (const [seed, keys] of [
    [100, [5, 1]],
    [101, [5, 0]],
    [100, [6, 0]],
  ] as const) {
    const other = new Float64Array(N);
    rngStream(seed, ...keys).fillNormal(other);
    let c = 0;
    for (let i = 0; i < N; i++) c += base[i]! * other[i]!;
    // Correlation of independent standard normals: se = 1/sqrt(N).
    assert.ok(Math.abs(c / N) < SIX / Math.sqrt(N), `seed ${seed} keys ${keys.join(',')}: ${c / N}`);
  }
});
