import { InputFileError } from '../errors.js';
import { parseLrScheduleOptions, resolveWarmupSteps } from '../optim/schedules.js';
import type { ResolvedRunConfig } from './resolve-run-config.js';

// How long a run is, in optimizer steps, once the training split's size is known: HF Trainer's
// arithmetic on top of the sampler's batches (shared/data/sampler.ts: a global batch of
// per-device x accumulation x world samples; a short last batch is a step unless
// dataloader_drop_last).

export interface StepPlan {
  /** Optimizer steps in one pass over the training split. */
  readonly stepsPerEpoch: number;
  /** Optimizer steps in the run: max_steps if > 0, else ceil(num_train_epochs x stepsPerEpoch). */
  readonly totalSteps: number;
  /** Epochs begun (the last may stop part-way). */
  readonly epochs: number;
  readonly warmupSteps: number;
  /** logging/eval/save steps with HF's ratios (values below 1) turned into step counts. */
  readonly loggingSteps: number;
  readonly evalSteps: number | undefined;
  readonly saveSteps: number;
}

export function planSteps(resolved: ResolvedRunConfig, trainSize: number): StepPlan {
  const c = resolved.config;
  if (!Number.isSafeInteger(trainSize) || trainSize < 1) throw new RangeError(`planSteps: the training split must hold at least one sample, got ${trainSize}`);
  const g = resolved.globalBatchSize;
  const stepsPerEpoch = c.dataloader_drop_last ? Math.floor(trainSize / g) : Math.ceil(trainSize / g);
  if (stepsPerEpoch === 0) {
    throw new InputFileError(
      resolved.source,
      '',
      `dataloader_drop_last: the training split's ${trainSize} samples are fewer than one global batch of ${g} (per_device_train_batch_size ${c.per_device_train_batch_size} x gradient_accumulation_steps ${c.gradient_accumulation_steps} x workers ${c.workers}), so an epoch has no step`,
    );
  }
  const totalSteps = c.max_steps > 0 ? c.max_steps : Math.ceil(c.num_train_epochs * stepsPerEpoch);
  const epochs = c.max_steps > 0 ? Math.ceil(c.max_steps / stepsPerEpoch) : Math.ceil(c.num_train_epochs);
  // HF TrainingArguments: a value below 1 is a ratio of the total steps, rounded up.
  const steps = (v: number): number => (v < 1 ? Math.ceil(totalSteps * v) : v);
  return Object.freeze({
    stepsPerEpoch,
    totalSteps,
    epochs,
    warmupSteps: resolveWarmupSteps(parseLrScheduleOptions(c, resolved.source), totalSteps),
    loggingSteps: steps(c.logging_steps),
    evalSteps: c.eval_steps === undefined ? undefined : steps(c.eval_steps),
    saveSteps: steps(c.save_steps),
  });
}
