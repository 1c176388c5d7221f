import { z } from 'zod';
import { OptimizerError } from '../errors.js';
import { parseInput } from '../zod-issues.js';

// Learning-rate schedules as transformers' `get_scheduler` builds them: a torch LambdaLR whose
// multiplier lambda(k) is applied to the base rate. LambdaLR evaluates lambda(0) when it is created
// and advances once after every optimizer step, so optimizer step k (0-based) runs with
// lr = learning_rate * lambda(k). The lambdas below are HF's, operation for operation, including
// what they do past the last step (linear stays 0; cosine rises again, as HF's does).

export const LR_SCHEDULER_TYPES = ['linear', 'cosine', 'constant', 'constant_with_warmup'] as const;
export type LrSchedulerType = (typeof LR_SCHEDULER_TYPES)[number];

/** Schedule options as HF TrainingArguments names them; defaults are HF's. */
export const LrScheduleOptionsSchema = z.object({
  learning_rate: z.number().min(0).default(5e-5),
  lr_scheduler_type: z
    .enum(LR_SCHEDULER_TYPES, {
      error: () => `expected one of ${LR_SCHEDULER_TYPES.join(', ')} (other transformers schedulers are not implemented)`,
    })
    .default('linear'),
  warmup_ratio: z.number().min(0).max(1).default(0),
  warmup_steps: z.number().int().min(0).default(0),
});

export type LrScheduleOptionsInput = z.input<typeof LrScheduleOptionsSchema>;

export interface LrScheduleOptions {
  readonly learningRate: number;
  readonly type: LrSchedulerType;
  readonly warmupRatio: number;
  readonly warmupSteps: number;
}

/** Validate schedule options (HF names; other keys are ignored); `source` names the file in errors. */
export function parseLrScheduleOptions(input: unknown, source = 'learning-rate schedule options'): LrScheduleOptions {
  const o = parseInput(LrScheduleOptionsSchema, input, source, 'learning-rate schedule');
  return Object.freeze({ learningRate: o.learning_rate, type: o.lr_scheduler_type, warmupRatio: o.warmup_ratio, warmupSteps: o.warmup_steps });
}

/** HF `TrainingArguments.get_warmup_steps`: warmup_steps wins when > 0, else ceil(ratio * total). */
export function resolveWarmupSteps(options: LrScheduleOptions, totalSteps: number): number {
  checkStepCount(totalSteps, 'total steps', 1);
  return options.warmupSteps > 0 ? options.warmupSteps : Math.ceil(totalSteps * options.warmupRatio);
}

/** A schedule fixed for one run: the lr of each optimizer step. Frozen. */
export interface LrSchedule {
  readonly type: LrSchedulerType;
  readonly learningRate: number;
  readonly warmupSteps: number;
  readonly totalSteps: number;
  /** lambda(step): the multiplier of the base rate at 0-based optimizer step `step`. */
  factorAt(step: number): number;
  /** learning_rate * lambda(step): the lr optimizer step `step` (0-based) uses. */
  lrAt(step: number): number;
}

export function lrSchedule(options: LrScheduleOptions, totalSteps: number): LrSchedule {
  const warmupSteps = resolveWarmupSteps(options, totalSteps);
  const lambda = scheduleLambda(options.type, warmupSteps, totalSteps);
  const factorAt = (step: number): number => {
    checkStepCount(step, 'step', 0);
    return lambda(step);
  };
  return Object.freeze({
    type: options.type,
    learningRate: options.learningRate,
    warmupSteps,
    totalSteps,
    factorAt,
    lrAt: (step: number) => options.learningRate * factorAt(step),
  });
}

// HF's `optimization.py` lambdas. Python's `float(a) / float(b)` is JS's a / b; `max` is Math.max.
function scheduleLambda(type: LrSchedulerType, warmup: number, total: number): (step: number) => number {
  switch (type) {
    case 'constant':
      return () => 1;
    case 'constant_with_warmup':
      return (step) => (step < warmup ? step / Math.max(1, warmup) : 1);
    case 'linear':
      return (step) => (step < warmup ? step / Math.max(1, warmup) : Math.max(0, (total - step) / Math.max(1, total - warmup)));
    case 'cosine': {
      const numCycles = 0.5;
      return (step) => {
        if (step < warmup) return step / Math.max(1, warmup);
        const progress = (step - warmup) / Math.max(1, total - warmup);
        return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
      };
    }
  }
}

function checkStepCount(value: number, what: string, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) throw new OptimizerError(`learning-rate schedule: ${what} ${value} must be an integer >= ${min}`);
}
