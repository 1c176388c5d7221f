// Early stopping on eval_loss with Hugging Face semantics (EarlyStoppingCallback + Trainer):
//  - each evaluation is compared with the best metric *before* it (HF updates best_metric when
//    it saves the checkpoint, after the callback ran);
//  - it resets the patience counter only if it beats the best by more than `threshold`;
//  - otherwise the counter grows, and training stops when it reaches `patience`;
//  - the best metric itself follows any improvement, however small (HF's `operator(metric, best)`).
// Lower is better (eval_loss); HF's greater_is_better = false.

export interface EvaluationOutcome {
  readonly isBest: boolean;
  readonly best: number;
  readonly bestStep: number;
  /** Evaluations left before stopping (null without early stopping). */
  readonly patienceLeft: number | null;
  readonly shouldStop: boolean;
}

export class EarlyStopping {
  private best: number | null = null;
  private bestStep = -1;
  private counter = 0;

  constructor(
    /** null: track the best, never stop. */
    private readonly patience: number | null,
    private readonly threshold = 0,
  ) {
    if (patience !== null && (!Number.isSafeInteger(patience) || patience < 1)) throw new RangeError(`early stopping patience must be a positive integer, got ${patience}`);
    if (!(threshold >= 0)) throw new RangeError(`early stopping threshold must be >= 0, got ${threshold}`);
  }

  evaluate(metric: number, step: number): EvaluationOutcome {
    if (!Number.isFinite(metric)) throw new RangeError(`eval metric at step ${step} is ${metric}`);
    const previous = this.best;
    if (previous === null || (metric < previous && Math.abs(metric - previous) > this.threshold)) this.counter = 0;
    else this.counter += 1;
    const isBest = previous === null || metric < previous;
    if (isBest) {
      this.best = metric;
      this.bestStep = step;
    }
    const shouldStop = this.patience !== null && this.counter >= this.patience;
    return {
      isBest,
      best: this.best!,
      bestStep: this.bestStep,
      patienceLeft: this.patience === null ? null : Math.max(0, this.patience - this.counter),
      shouldStop,
    };
  }
}
