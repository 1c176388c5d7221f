import { ReportKind, type WorkerReport } from '../proto/gen/control/control.js';
import { WorkerFailedError } from './worker-lost-error.js';

// Waits until every rank has reported a given (kind, step): "the step committed everywhere".
// A FAILED report from any rank fails the wait with that rank's message.

export class ReportBarrier {
  private readonly got = new Map<string, (WorkerReport | undefined)[]>();
  private readonly waiters = new Map<string, { resolve: (r: WorkerReport[]) => void; reject: (e: Error) => void }>();
  private failure: Error | null = null;

  constructor(private readonly world: number) {}

  private key(kind: ReportKind, step: number): string {
    return `${kind}:${step}`;
  }

  wait(kind: ReportKind, step: number): Promise<WorkerReport[]> {
    if (this.failure) return Promise.reject(this.failure);
    const key = this.key(kind, step);
    return new Promise((resolve, reject) => {
      this.waiters.set(key, { resolve, reject });
      this.check(key);
    });
  }

  add(report: WorkerReport): void {
    if (report.kind === ReportKind.FAILED) {
      this.fail(new WorkerFailedError(report.rank, `worker rank ${report.rank} failed: ${report.detail}`, report.fatal));
      return;
    }
    const key = this.key(report.kind, report.step);
    let list = this.got.get(key);
    if (!list) {
      list = new Array<WorkerReport | undefined>(this.world).fill(undefined);
      this.got.set(key, list);
    }
    list[report.rank] = report;
    this.check(key);
  }

  fail(error: Error): void {
    this.failure ??= error;
    for (const w of this.waiters.values()) w.reject(error);
    this.waiters.clear();
  }

  private check(key: string): void {
    const list = this.got.get(key);
    const waiter = this.waiters.get(key);
    if (!waiter || !list || !list.every((r) => r)) return;
    this.got.delete(key);
    this.waiters.delete(key);
    waiter.resolve(list as WorkerReport[]);
  }
}
