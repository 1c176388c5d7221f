import { z } from 'zod';
import { InputFileError } from '../errors.js';
import { formatZodIssues } from '../zod-issues.js';
import { ShardFileSchema } from '../checkpoint/checkpoint-manifest.js';

// What the coordinator tells every worker about a run: the resolved configuration, reduced to
// the facts a worker acts on. It crosses the wire as JSON and is validated again on arrival.
export const TrainPlanSchema = z.strictObject({
  version: z.literal(1),
  run_id: z.string().min(1),
  /** `preset:<name>` or an HF model directory. */
  model: z.string().min(1),
  dropout_rate: z.number().min(0).lt(1).nullable(),
  /** A cache made by `kp-coord data prepare`; its manifest's layout matches the model's family. */
  data_cache: z.string().min(1),
  /**
   * LoRA adapters (PEFT LoraConfig names; run config `lora`): only the adapters train, the base
   * weights stay frozen. null: full fine-tuning. The new prefix tokens' embedding rows (the
   * cache's causal.added_tokens) are the model side's to initialise.
   */
  lora: z
    .strictObject({
      r: z.number().int().positive(),
      lora_alpha: z.number().positive(),
      lora_dropout: z.number().min(0).lt(1),
      /** Leaf module names to wrap (family default filled in: gpt_neox query_key_value, t5 q and v). */
      target_modules: z.array(z.string().min(1)).min(1),
      /** The factor on B·A·x: lora_alpha / r (lora_alpha / sqrt(r) with use_rslora). */
      scaling: z.number().positive(),
    })
    .nullable(),
  /** Decoder-only (causal) training; null for seq2seq models. */
  causal: z
    .strictObject({
      /** Labels -100 on the prompt (TRL completion_only_loss); false: loss on the whole sequence. */
      completion_only_loss: z.boolean(),
    })
    .nullable(),
  /** Initialisation and dropout masks. */
  seed: z.number().int().nonnegative(),
  /** The sampler's epoch permutations (HF data_seed). */
  data_seed: z.number().int().nonnegative(),
  world: z.number().int().positive(),
  zero_stage: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3)]),
  /** DeepSpeed's stage-3 settings (elements), resolved; used at stage 3 ([Note: gather schedule]). */
  stage3: z.strictObject({
    prefetch_bucket_size: z.number().int().nonnegative(),
    param_persistence_threshold: z.number().int().nonnegative(),
    max_live_parameters: z.number().int().nonnegative(),
    max_reuse_distance: z.number().int().nonnegative(),
  }),
  /** Threads each rank's AdamW step is split over (stage 3). */
  optimizer_threads: z.number().int().positive(),
  /** HF gradient_checkpointing: each block's backward recomputes its forward. */
  gradient_checkpointing: z.boolean(),
  /** DeepSpeed overlap_comm: the engine runs in a worker thread while gradients are reduced. */
  overlap_comm: z.boolean(),
  /** DeepSpeed reduce_bucket_size: elements per stage-2 gradient reduce-scatter. */
  reduce_bucket_size: z.number().int().positive(),
  per_device_train_batch_size: z.number().int().positive(),
  gradient_accumulation_steps: z.number().int().positive(),
  group_by_length: z.boolean(),
  dataloader_drop_last: z.boolean(),
  steps_per_epoch: z.number().int().positive(),
  total_steps: z.number().int().positive(),
  max_grad_norm: z.number().min(0),
  adamw: z.strictObject({
    adam_beta1: z.number(),
    adam_beta2: z.number(),
    adam_epsilon: z.number(),
    weight_decay: z.number(),
  }),
  schedule: z.strictObject({
    learning_rate: z.number().positive(),
    lr_scheduler_type: z.string(),
    warmup_ratio: z.number().min(0).max(1),
    warmup_steps: z.number().int().nonnegative(),
  }),
  output_dir: z.string().min(1),
  /** Evaluate after these global steps (1-based counts of steps done); empty = never. */
  eval_after_steps: z.array(z.number().int().positive()),
  per_device_eval_batch_size: z.number().int().positive(),
  early_stopping_patience: z.number().int().positive().nullable(),
  early_stopping_threshold: z.number().min(0),
  load_best_model_at_end: z.boolean(),
  /** Save a checkpoint after these counts of steps done; empty = never. */
  save_after_steps: z.array(z.number().int().positive()),
  save_total_limit: z.number().int().positive().nullable(),
  /** predict_with_generate: decode the eval split at the end with these settings; null: do not. */
  generate: z
    .strictObject({
      max_new_tokens: z.number().int().positive(),
      num_beams: z.number().int().positive(),
      no_repeat_ngram_size: z.number().int().nonnegative(),
    })
    .nullable(),
  /** Continue from a verified checkpoint: its directory, steps done and shard files. */
  resume: z
    .strictObject({
      dir: z.string(),
      steps_done: z.number().int().nonnegative(),
      optimizer_step: z.number().int().nonnegative(),
      /** The verified manifest's files, as it lists them. */
      files: z.array(ShardFileSchema),
      /** The best evaluation's checkpoint, for load_best_model_at_end. */
      best_dir: z.string().nullable(),
    })
    .nullable(),
});

export type TrainPlan = z.infer<typeof TrainPlanSchema>;

export function parseTrainPlan(json: string, source = 'train plan'): TrainPlan {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (cause) {
    throw new InputFileError(source, '', `not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const parsed = TrainPlanSchema.safeParse(raw);
  if (!parsed.success) {
    throw new InputFileError(source, '', formatZodIssues(parsed.error));
  }
  return Object.freeze(parsed.data);
}
