// Generation progress on stderr: one updating line on a terminal, a line per tenth otherwise (CI
// logs), in the manner of coordinator/progress-bar.ts.

export class ProgressLine {
  private lastLength = 0;
  private lastTenth = -1;
  private readonly started = performance.now();

  constructor(
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly width = 24,
  ) {}

  update(done: number, total: number, tokens: number): void {
    const seconds = (performance.now() - this.started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const filled = total > 0 ? Math.round((done / total) * this.width) : this.width;
    const eta = rate > 0 ? (total - done) / rate : Infinity;
    const text =
      `[${'#'.repeat(filled)}${'.'.repeat(this.width - filled)}] ${done}/${total} articles ` +
      `${rate.toFixed(2)} articles/s ${(seconds > 0 ? tokens / seconds : 0).toFixed(1)} tokens/s ETA ${formatSeconds(eta)}`;
    if (this.out.isTTY === true) {
      this.out.write(`\r${text.padEnd(this.lastLength)}`);
      this.lastLength = text.length;
      if (done === total) this.out.write('\n');
      return;
    }
    const tenth = total > 0 ? Math.floor((done / total) * 10) : 10;
    if (tenth !== this.lastTenth || done === total) {
      this.lastTenth = tenth;
      this.out.write(`${text}\n`);
    }
  }
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}
