// What a run tells its watchers (the terminal progress bar now; NATS in a later issue).
export type RunEvent =
  | { readonly type: 'listening'; readonly port: number }
  | { readonly type: 'note'; readonly text: string }
  | { readonly type: 'worker_joined'; readonly rank: number; readonly host: string; readonly pid: number; readonly workerId: string }
  | { readonly type: 'started'; readonly world: number; readonly totalSteps: number; readonly zeroStage: number }
  | {
      readonly type: 'step';
      readonly step: number;
      readonly totalSteps: number;
      readonly epoch: number;
      /** Token-mean training loss of the step's global batch. */
      readonly loss: number;
      readonly lr: number;
      readonly gradNorm: number;
      readonly samplesPerSecond: number;
      readonly tokensPerSecond: number;
      readonly etaSeconds: number;
    }
  | {
      readonly type: 'eval';
      readonly step: number;
      readonly epoch: number;
      readonly evalLoss: number;
      readonly bestEvalLoss: number;
      readonly bestStep: number;
      readonly isBest: boolean;
      /** Evaluations left before early stopping; null without early stopping. */
      readonly patienceLeft: number | null;
    }
  /** predict_with_generate: the eval split decoded with the final model, scored. */
  | { readonly type: 'generate_eval'; readonly stepsDone: number; readonly documents: number; readonly metrics: Readonly<Record<string, number>>; readonly reportFile: string }
  | { readonly type: 'early_stop'; readonly step: number; readonly bestEvalLoss: number; readonly bestStep: number }
  | { readonly type: 'checkpoint'; readonly step: number; readonly dir: string }
  | { readonly type: 'saved'; readonly dir: string }
  | { readonly type: 'finished'; readonly summaryPath: string }
  | { readonly type: 'failed'; readonly reason: string }
  /** Stopped on purpose (Ctrl-C on `kp-coord start`), not failed. */
  | { readonly type: 'interrupted'; readonly reason: string }
  | { readonly type: 'worker_lost'; readonly rank: number; readonly host: string; readonly pid: number; readonly reason: string }
  /** Training continues from the checkpoint after `toStep` steps (0: from the beginning). */
  | { readonly type: 'rolled_back'; readonly toStep: number; readonly reason: string };

export type RunEventListener = (e: RunEvent) => void;
