import type { EvalEvent, LifecycleEvent, ProgressEvent, RunConfigSummary } from '../../shared/events/events-v1.js';
import type { RunEvent } from '../run-events.js';

// RunEvent (what the coordinator's loop emits) -> the published event bodies (events-v1.ts), without
// the envelope the publisher adds. Steps become counts of steps done, as HF's global_step.

type Body<T> = T extends unknown ? Omit<T, 'v' | 'run' | 'seq' | 'time'> : never;

export type OutgoingEvent =
  | { readonly kind: 'progress'; readonly body: Body<ProgressEvent> }
  | { readonly kind: 'eval'; readonly body: Body<EvalEvent> }
  | { readonly kind: 'lifecycle'; readonly body: Body<LifecycleEvent> };

export class EventMapper {
  /** Steps done so far; lifecycle events that carry a step use it. */
  private stepsDone = 0;

  constructor(private readonly config: Omit<RunConfigSummary, 'world' | 'zero_stage' | 'total_steps'>) {}

  map(e: RunEvent): OutgoingEvent | null {
    switch (e.type) {
      case 'started':
        return { kind: 'lifecycle', body: { event: 'run_started', config: { ...this.config, world: e.world, zero_stage: e.zeroStage, total_steps: e.totalSteps } } };
      case 'worker_joined':
        return { kind: 'lifecycle', body: { event: 'worker_joined', rank: e.rank, host: e.host, pid: e.pid, worker_id: e.workerId } };
      case 'step':
        this.stepsDone = e.step + 1;
        return {
          kind: 'progress',
          body: {
            step: e.step + 1, total_steps: e.totalSteps, epoch: e.epoch, loss: e.loss, lr: e.lr, grad_norm: e.gradNorm,
            // A step timed at 0 ms gives Infinity; the schema wants finite, non-negative rates.
            samples_per_second: finiteOrZero(e.samplesPerSecond), tokens_per_second: finiteOrZero(e.tokensPerSecond), eta_seconds: finiteOrZero(e.etaSeconds),
          },
        };
      case 'eval':
        return { kind: 'eval', body: { step: e.step + 1, epoch: e.epoch, eval_loss: e.evalLoss, best_eval_loss: e.bestEvalLoss, is_best: e.isBest, patience_left: e.patienceLeft } };
      case 'generate_eval':
        return { kind: 'eval', body: { step: e.stepsDone, documents: e.documents, metrics: { ...e.metrics } } };
      case 'early_stop':
        return { kind: 'lifecycle', body: { event: 'early_stopped', step: e.step + 1, reason: `no eval_loss improvement; best ${e.bestEvalLoss} at step ${e.bestStep + 1}` } };
      case 'checkpoint':
        return { kind: 'lifecycle', body: { event: 'checkpoint_saved', step: e.step + 1, dir: e.dir } };
      case 'saved':
        return { kind: 'lifecycle', body: { event: 'checkpoint_saved', step: this.stepsDone, dir: e.dir } };
      case 'finished':
        return { kind: 'lifecycle', body: { event: 'finished', step: this.stepsDone, summary_path: e.summaryPath } };
      case 'failed':
        return { kind: 'lifecycle', body: { event: 'failed', reason: e.reason } };
      case 'interrupted':
        return { kind: 'lifecycle', body: { event: 'interrupted', reason: e.reason } };
      case 'worker_lost':
        return { kind: 'lifecycle', body: { event: 'worker_left', rank: e.rank, host: e.host, pid: e.pid, reason: e.reason } };
      case 'rolled_back':
        this.stepsDone = e.toStep;
        return { kind: 'lifecycle', body: { event: 'rolled_back', to_step: e.toStep, reason: e.reason } };
      default:
        // 'listening' and 'note' are for the local terminal only.
        return null;
    }
  }
}

function finiteOrZero(x: number): number {
  return Number.isFinite(x) && x > 0 ? x : 0;
}
