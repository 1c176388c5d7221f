import type { StepRecord } from './step-driver.js';

// What a run has done so far, across rounds: a lost worker rolls the run back to its last
// checkpoint, and the steps after it are dropped here and done again, so the summary lists each
// step once (as done by the round that finished it).

export class RunHistory {
  readonly started = performance.now();
  trainStarted: number | null = null;
  private records: (StepRecord & { readonly samples: number; readonly tokens: number })[] = [];
  private readonly peakRss: number[] = [];
  samples = 0;
  tokens = 0;
  /** Rounds that ended with a lost or failed worker (before or during training). */
  restarts = 0;

  get trainLoss(): readonly StepRecord[] {
    return this.records;
  }

  addStep(record: StepRecord, samples: number, tokens: number): void {
    this.records.push({ ...record, samples, tokens });
    this.samples += samples;
    this.tokens += tokens;
  }

  notePeakRss(rank: number, bytes: number): void {
    this.peakRss[rank] = Math.max(this.peakRss[rank] ?? 0, bytes);
  }

  /** Peak resident memory by rank, over every round (a rank number may be reused). */
  get workerPeakRss(): readonly number[] {
    return Array.from(this.peakRss, (v) => v ?? 0);
  }

  /** Forget the steps at or after `stepsDone` (they will be done again). */
  rollBackTo(stepsDone: number): void {
    const kept = this.records.filter((r) => r.step < stepsDone);
    for (const r of this.records.slice(kept.length)) {
      this.samples -= r.samples;
      this.tokens -= r.tokens;
    }
    this.records = kept;
  }
}
