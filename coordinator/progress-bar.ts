import type { RunEvent } from './run-events.js';

// The terminal watcher of a local run: one updating line on a TTY, a line per logging interval
// otherwise (CI logs), plus a line for each lifecycle event.

export class ProgressBar {
  private lastLine = 0;

  constructor(
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly everySteps = 10,
  ) {}

  readonly onEvent = (e: RunEvent): void => {
    const tty = this.out.isTTY === true;
    switch (e.type) {
      case 'listening':
        this.line(`coordinator listening on port ${e.port}`);
        break;
      case 'note':
        this.line(e.text);
        break;
      case 'worker_joined':
        this.line(`worker ${e.rank} joined (${e.workerId})`);
        break;
      case 'started':
        this.line(`training: ${e.world} workers, ZeRO stage ${e.zeroStage}, ${e.totalSteps} steps`);
        break;
      case 'step': {
        const done = e.step + 1;
        const width = 24;
        const filled = Math.round((done / e.totalSteps) * width);
        const text =
          `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] step ${done}/${e.totalSteps} epoch ${e.epoch} ` +
          `loss ${e.loss.toFixed(4)} lr ${e.lr.toExponential(2)} ${e.samplesPerSecond.toFixed(1)} samples/s ETA ${formatSeconds(e.etaSeconds)}`;
        if (tty) {
          this.out.write(`\r${text.padEnd(this.lastLine)}`);
          this.lastLine = text.length;
          if (done === e.totalSteps) this.out.write('\n');
        } else if (done % this.every(e.totalSteps) === 0 || done === 1 || done === e.totalSteps) {
          this.line(text);
        }
        break;
      }
      case 'eval':
        this.line(
          `eval after step ${e.step + 1} (epoch ${e.epoch}): eval_loss ${e.evalLoss.toFixed(4)}${e.isBest ? ' (best)' : ''}, best ${e.bestEvalLoss.toFixed(4)} at step ${e.bestStep + 1}` +
            (e.patienceLeft === null ? '' : `, patience left ${e.patienceLeft}`),
        );
        break;
      case 'generate_eval':
        this.line(`generated the eval split (${e.documents} articles): ${Object.entries(e.metrics).map(([k, v]) => `${k} ${v}`).join(', ')}; report in ${e.reportFile}`);
        break;
      case 'early_stop':
        this.line(`early stop after step ${e.step + 1}: no improvement; best eval_loss ${e.bestEvalLoss.toFixed(4)} at step ${e.bestStep + 1}`);
        break;
      case 'checkpoint':
        this.line(`checkpoint after step ${e.step + 1}: ${e.dir}`);
        break;
      case 'saved':
        this.line(`final model saved in ${e.dir}`);
        break;
      case 'finished':
        this.line(`finished; summary in ${e.summaryPath}`);
        break;
      case 'failed':
        this.line(`run failed: ${e.reason}`);
        break;
      case 'interrupted':
        this.line(`run interrupted: ${e.reason}`);
        break;
      case 'worker_lost':
        this.line(`worker ${e.rank} lost (pid ${e.pid}): ${e.reason}`);
        break;
      case 'rolled_back':
        this.line(`rolled back to step ${e.toStep}: ${e.reason}`);
        break;
    }
  };

  /** logging_steps below 1 is a ratio of the total steps, as in HF. */
  private every(totalSteps: number): number {
    return this.everySteps < 1 ? Math.max(1, Math.ceil(this.everySteps * totalSteps)) : this.everySteps;
  }

  private line(text: string): void {
    if (this.lastLine > 0 && this.out.isTTY) this.out.write('\n');
    this.lastLine = 0;
    this.out.write(`${text}\n`);
  }
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}
