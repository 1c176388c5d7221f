import { KpCoordError } from '../shared/errors.js';

// Small all-reduces through the coordinator (token counts, loss sums, squared gradient norms):
// each key completes once every rank has contributed, and the sum is taken in rank order in
// float64, so every rank gets bit-identical results whatever order the calls arrived in.

interface Pending {
  readonly parts: (readonly number[] | undefined)[];
  readonly waiters: { resolve: (v: number[]) => void; reject: (e: Error) => void }[];
}

export class ScalarAllReduce {
  private readonly pending = new Map<string, Pending>();
  private failure: Error | null = null;

  constructor(private readonly world: number) {}

  contribute(rank: number, key: string, values: readonly number[]): Promise<number[]> {
    if (this.failure) return Promise.reject(this.failure);
    let p = this.pending.get(key);
    if (!p) {
      p = { parts: new Array<readonly number[] | undefined>(this.world).fill(undefined), waiters: [] };
      this.pending.set(key, p);
    }
    if (p.parts[rank]) return Promise.reject(new KpCoordError(`all-reduce ${key}: rank ${rank} contributed twice`));
    const width = p.parts.find((x) => x)?.length;
    if (width !== undefined && width !== values.length) {
      return Promise.reject(new KpCoordError(`all-reduce ${key}: rank ${rank} sent ${values.length} values, others ${width}`));
    }
    p.parts[rank] = values;
    const done = new Promise<number[]>((resolve, reject) => p.waiters.push({ resolve, reject }));
    if (p.parts.every((x) => x)) {
      const sum = new Array<number>(values.length).fill(0);
      for (const part of p.parts) part!.forEach((v, i) => (sum[i]! += v));
      this.pending.delete(key);
      for (const w of p.waiters) w.resolve(sum);
    }
    return done;
  }

  /** Wake every waiter with `error` (a rank died): no reduction can complete any more. */
  fail(error: Error): void {
    this.failure = error;
    for (const p of this.pending.values()) for (const w of p.waiters) w.reject(error);
    this.pending.clear();
  }
}
