import type { Logger } from './log.js';

// Refused calls (no or a wrong token) are logged, but a peer that retries in a loop, or a scanner,
// must not flood the log: the 1st, 10th, 100th, 1000th, ... refusal is written, each with the
// count so far and the latest peer. Decades rather than a time window, so what is written does not
// depend on timing, and a long attack still shows up, ever more rarely.

export class RefusalLog {
  private count = 0;
  private nextLogged = 1;

  constructor(
    private readonly log: Logger,
    private readonly message: string,
  ) {}

  refused(fields: Readonly<Record<string, unknown>>): void {
    this.count++;
    if (this.count < this.nextLogged) return;
    this.nextLogged *= 10;
    const more = this.count === 1 ? '' : ` (${this.count} refusals so far; the next line at ${this.nextLogged})`;
    this.log.warn({ ...fields, refused: this.count }, `${this.message}${more}`);
  }

  get total(): number {
    return this.count;
  }
}
