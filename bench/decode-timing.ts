import { loadavg } from 'node:os';

// Decoding speed apart from the prompt / encoder pass: decode exactly SHORT and exactly N new
// tokens (after a 2-token warm-up that creates the sessions and grows the arena); the difference
// over N - SHORT steps is the cached step's time. Shared by bench/neox-generate and bench/bart-generate.

export const SHORT = 8;

export const loads = () => loadavg().map((x) => x.toFixed(2)).join(' ');

export interface DecodeTiming {
  readonly warm: number;
  /** Seconds for SHORT and for `newTokens` new tokens, with the load average before each. */
  readonly short: number;
  readonly long: number;
  readonly loadShort: string;
  readonly loadLong: string;
  /** Seconds per step beyond the first SHORT. */
  readonly stepSeconds: number;
}

/** `decode(n)`: seconds to decode exactly n new tokens. */
export async function timeDecodeSteps(decode: (tokens: number) => Promise<number>, newTokens: number): Promise<DecodeTiming> {
  if (!(newTokens > SHORT)) throw new Error(`--new-tokens must exceed ${SHORT}`);
  const warm = await decode(2);
  const loadShort = loads();
  const short = await decode(SHORT);
  const loadLong = loads();
  const long = await decode(newTokens);
  return { warm, short, long, loadShort, loadLong, stepSeconds: (long - short) / (newTokens - SHORT) };
}

/** The three timing lines both benches print. */
export function printDecodeTiming(t: DecodeTiming, newTokens: number): void {
  console.log(`  warm-up (2 tokens)        ${t.warm.toFixed(2)} s`);
  console.log(`  ${String(SHORT).padStart(3)} new tokens            ${t.short.toFixed(2)} s   load ${t.loadShort}`);
  console.log(`  ${String(newTokens).padStart(3)} new tokens            ${t.long.toFixed(2)} s   load ${t.loadLong}`);
}
