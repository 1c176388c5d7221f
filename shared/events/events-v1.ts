import { z } from 'zod';

// Version 1 of what a run publishes on NATS, one schema per subject:
//   <prefix>.<run>.progress   training steps (throttled; the last step is always sent)
//   <prefix>.<run>.eval       evaluations
//   <prefix>.<run>.lifecycle  everything else that happens to the run once (never dropped while reachable)
// Every message carries `v` (bump it, and keep parsing old versions, when a field changes meaning),
// the run name, the publisher's sequence number across the run's three subjects (gaps = drops) and
// the time it was produced. Field names are snake_case, as in the run config and summary.json.

export const EVENTS_VERSION = 1;

const count = z.number().int().min(0);
const finite = z.number().refine(Number.isFinite, { error: () => 'expected a finite number' });

const envelope = {
  v: z.literal(EVENTS_VERSION),
  run: z.string().min(1),
  /** The publisher's sequence across the run's subjects, from 0; a gap means events were dropped. */
  seq: count,
  /** When the coordinator produced the event (ISO 8601). */
  time: z.iso.datetime(),
};

export const ProgressEventSchema = z
  .object({
    ...envelope,
    /** Optimizer steps completed (1-based, as HF's global_step). */
    step: z.number().int().min(1),
    total_steps: z.number().int().min(1),
    epoch: count,
    /** Token-mean training loss of the step's global batch. */
    loss: finite,
    lr: z.number().min(0),
    grad_norm: z.number().min(0),
    samples_per_second: z.number().min(0),
    tokens_per_second: z.number().min(0),
    eta_seconds: z.number().min(0),
  })
  .strict();

export const LossEvalEventSchema = z
  .object({
    ...envelope,
    step: z.number().int().min(1),
    epoch: count,
    eval_loss: finite,
    /** Best eval loss so far, this one included. */
    best_eval_loss: finite,
    is_best: z.boolean(),
    /** Evaluations without improvement left before early stopping; null without early stopping. */
    patience_left: count.nullable(),
  })
  .strict();

/** predict_with_generate: the eval split decoded with the final model and scored (kp-coord evaluate's metrics). */
export const GenerateEvalEventSchema = z
  .object({
    ...envelope,
    /** Steps done when the final model was saved. */
    step: count,
    documents: count,
    /** Percentages as `kp-coord evaluate` prints them: seed_f1_at_10, field_f1_at_5, rouge1, ... */
    metrics: z.record(z.string(), finite),
  })
  .strict();

/** Both travel on the eval subject; `eval_loss` tells them apart. */
export const EvalEventSchema = z.union([LossEvalEventSchema, GenerateEvalEventSchema]);

/** What a watcher needs to know about a run's setup, published once when training starts. */
export const RunConfigSummarySchema = z
  .object({
    model: z.string(),
    world: z.number().int().min(1),
    zero_stage: z.number().int().min(0).max(3),
    total_steps: z.number().int().min(1),
    global_batch_size: z.number().int().min(1),
    learning_rate: z.number().min(0),
    lr_scheduler_type: z.string(),
    seed: count,
    output_dir: z.string(),
  })
  .strict();

const worker = { rank: count, host: z.string(), pid: z.number().int().min(0) };

export const LifecycleEventSchema = z.discriminatedUnion('event', [
  z.object({ ...envelope, event: z.literal('run_started'), config: RunConfigSummarySchema }).strict(),
  z.object({ ...envelope, event: z.literal('worker_joined'), ...worker, worker_id: z.string() }).strict(),
  z.object({ ...envelope, event: z.literal('worker_left'), ...worker, reason: z.string() }).strict(),
  z.object({ ...envelope, event: z.literal('checkpoint_saved'), step: count, dir: z.string() }).strict(),
  z.object({ ...envelope, event: z.literal('rolled_back'), to_step: count, reason: z.string() }).strict(),
  z.object({ ...envelope, event: z.literal('early_stopped'), step: count, reason: z.string() }).strict(),
  z.object({ ...envelope, event: z.literal('finished'), step: count, summary_path: z.string() }).strict(),
  z.object({ ...envelope, event: z.literal('failed'), reason: z.string() }).strict(),
  /** Stopped on purpose (Ctrl-C): run.json says `interrupted` too, and the next start begins afresh. */
  z.object({ ...envelope, event: z.literal('interrupted'), reason: z.string() }).strict(),
  /** The publisher's buffer overflowed while NATS was away; these many events of each kind are gone. */
  z.object({ ...envelope, event: z.literal('events_dropped'), progress: count, eval: count, lifecycle: count }).strict(),
]);

export type ProgressEvent = z.output<typeof ProgressEventSchema>;
export type EvalEvent = z.output<typeof EvalEventSchema>;
export type LifecycleEvent = z.output<typeof LifecycleEventSchema>;
export type RunConfigSummary = z.output<typeof RunConfigSummarySchema>;

export const EVENT_KINDS = ['progress', 'eval', 'lifecycle'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

/** One published event, tagged with the subject kind it travels on. */
export type KpcoordEvent =
  | { readonly kind: 'progress'; readonly event: ProgressEvent }
  | { readonly kind: 'eval'; readonly event: EvalEvent }
  | { readonly kind: 'lifecycle'; readonly event: LifecycleEvent };

/** Lifecycle events after which a run publishes nothing more. */
export const TERMINAL_EVENTS = ['finished', 'failed', 'interrupted'] as const;
