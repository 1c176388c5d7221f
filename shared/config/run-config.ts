import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { PREFIX_TOKENS } from '../data/cache-format.js';
import { RULE_PRESETS } from '../data/data-rules.js';
import { MODEL_PRESETS } from '../models/model-spec.js';
import { AdamWOptionsSchema } from '../optim/adamw.js';
import { LrScheduleOptionsSchema } from '../optim/schedules.js';
import { BUILTIN_TOKENIZER } from '../tokenizer/load-tokenizer.js';
import { LoraConfigSchema } from './lora-config.js';
import { ZeroOptimizationSchema } from './zero-config.js';

// The run config: flat Hugging Face TrainingArguments names at the top level (so a TrainingArguments
// YAML reads the same here), a `zero_optimization` section in DeepSpeed's names, and the few keys
// kp-coord adds (model, data, tokenizer, workers, heartbeats, nats). Defaults are HF's where HF has
// the key (DeepSpeed's inside zero_optimization). Unknown keys are errors.
//
// This schema checks each field on its own. What needs several fields or the file system (the
// DeepSpeed file, "auto" values, lifecycle combinations, stage 3, paths) is resolveRunConfig's job:
// use that, not this schema, to read a config.

/** The shipped sample set (110 rows), found beside the compiled code (dist/shared/config -> repo). */
export const EMBEDDED_SAMPLE_FILE = fileURLToPath(new URL('../../../shared/datasets/ko-news-sample.jsonl', import.meta.url));

export const MODEL_PRESET_PREFIX = 'preset:';

const positiveInt = z.number().int().min(1);
const seed = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** HF's logging/eval/save steps: a whole number of steps, or below 1 a ratio of the total steps. */
const stepsOrRatio = z
  .number()
  .positive()
  .refine((v) => v < 1 || Number.isInteger(v), { error: () => 'expected a whole number of steps, or a ratio of the total steps in (0, 1)' });
const intervalStrategy = z.enum(['no', 'steps', 'epoch']);

const presetNames = Object.keys(MODEL_PRESETS);
const modelSpec = z
  .string()
  .min(1)
  .refine((m) => !m.startsWith(MODEL_PRESET_PREFIX) || Object.hasOwn(MODEL_PRESETS, m.slice(MODEL_PRESET_PREFIX.length)), {
    error: () => `unknown model preset; known: ${presetNames.map((p) => MODEL_PRESET_PREFIX + p).join(', ')}`,
  });

const rulesPreset = z.string().refine((p) => Object.hasOwn(RULE_PRESETS, p), {
  error: () => `unknown data rules preset; known: ${Object.keys(RULE_PRESETS).join(', ')}`,
});

/** Raw files that the coordinator prepares on the fly, as `kp-coord data prepare` would. */
export const DataFilesSchema = z
  .object({
    train_file: z.string().min(1),
    /** Without it, the preset's eval_ratio of the kept rows becomes the eval split. */
    eval_file: z.string().min(1).nullish(),
    /** Cleaning/filtering rules (shared/data/data-rules.ts); `data prepare`'s default. */
    preset: rulesPreset.default('v4'),
    /**
     * Decoder-only models (the cache is prepared in the causal layout): the two prefixes as text
     * (absent: "text") or as new tokens after the vocabulary ("added", HF add_tokens).
     */
    prefix_tokens: z.enum(PREFIX_TOKENS).nullish(),
  })
  .strict();

export const NatsSchema = z
  .object({
    url: z
      .string()
      .refine((u) => /^(nats|tls|ws|wss):\/\/[^\s]+$/u.test(u), { error: () => 'expected a nats://, tls://, ws:// or wss:// URL' })
      .default('nats://127.0.0.1:4222'),
    /** Subjects are <prefix>.<run_name>.progress|eval|lifecycle. */
    subject_prefix: z
      .string()
      .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/u, { error: () => 'expected NATS subject tokens: letters, digits, _ or -, joined by "."' })
      .default('kpcoord'),
    /** A NATS .creds file (JWT + nkey seed). User/password or a token come from the environment (coordinator/nats/nats-connection.ts). */
    credentials_file: z.string().min(1).nullish(),
    /** Progress events are sent at most this often (the last step always); lifecycle and eval events are never throttled. */
    progress_interval_ms: z.number().int().min(0).default(1000),
  })
  .strict();

/** HF TrainingArguments keys a copied HF config may hold that change nothing here, and why. */
export const HF_KEYS_NOT_USED: Readonly<Record<string, string>> = Object.freeze({
  fp16: 'mixed precision: kp-coord trains in float32 on CPU',
  bf16: 'mixed precision: kp-coord trains in float32 on CPU',
  tf32: 'a CUDA matmul mode; kp-coord trains in float32 on CPU',
  do_train: 'kp-coord commands say what runs',
  do_eval: 'evaluation follows eval_strategy',
  do_predict: 'prediction is `kp-coord generate`',
  overwrite_output_dir: 'a run replaces output_dir/final and output_dir/summary.json (each written atomically)',
  logging_dir: 'progress goes to the log and to NATS',
  report_to: 'progress goes to the log and to NATS',
  disable_tqdm: 'there is no progress bar',
  dataloader_num_workers: 'workers read the tokenised cache directly',
  dataloader_pin_memory: 'a CUDA host-memory detail',
  remove_unused_columns: 'the cache holds only the model inputs',
});

/**
 * Keys validated now (so configs written today stay valid) that the distributed training run does
 * not act on yet; resolveRunConfig lists the ones a config sets in `ignored` with this reason.
 * Remove a key from here when the code that honours it lands.
 */
export const KEYS_FOR_LATER_ISSUES: Readonly<Record<string, string>> = Object.freeze({
});

export const RunConfigSchema = z
  .object({
    // --- run
    /** Names the run in NATS subjects and under output_dir; the coordinator derives one if absent. */
    run_name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/u, { error: () => 'expected 1-64 letters, digits, _ or - (it becomes a NATS subject token and a folder name)' })
      .nullish(),
    output_dir: z.string().min(1).default('runs/kp-coord'),
    /** Initialisation and dropout masks. */
    seed: seed.default(42),
    /** HF gradient_checkpointing: each block's backward recomputes its forward from the block input (less memory, ~1/3 more compute). */
    gradient_checkpointing: z.boolean().default(false),
    /** The sampler's shuffles; HF's default (absent) is to use `seed`. */
    data_seed: seed.nullish(),

    // --- model
    /** `preset:<name>` (shared/models/presets.ts) or an HF model directory (config.json + safetensors). */
    model: modelSpec.default(`${MODEL_PRESET_PREFIX}t5-small-bytes`),
    /** Replaces the model config's dropout_rate for training. */
    dropout_rate: z.number().min(0).lt(1).nullish(),
    /** LoRA adapters under PEFT LoraConfig's names (lora-config.ts); absent or null: full fine-tuning. */
    lora: LoraConfigSchema.nullish(),
    /**
     * Decoder-only models: score only the completion (keyphrases + eos), not the prompt — TRL
     * SFTConfig's name (DataCollatorForCompletionOnlyLM). Default false: the loss is on the whole
     * sequence, as the team's runs had it.
     */
    completion_only_loss: z.boolean().default(false),

    // --- data
    /** A cache folder made by `kp-coord data prepare`, or raw files to prepare on the fly. */
    data: z.union([z.string().min(1), DataFilesSchema]).default({ train_file: EMBEDDED_SAMPLE_FILE, preset: 'embedded-sample' }),
    /** "builtin" (bytes, ByT5 ids), a tokenizer.json, or a folder holding one. */
    tokenizer: z.string().min(1).default(BUILTIN_TOKENIZER),

    // --- training (HF TrainingArguments names and defaults)
    per_device_train_batch_size: positiveInt.default(8),
    per_device_eval_batch_size: positiveInt.default(8),
    gradient_accumulation_steps: positiveInt.default(1),
    ...LrScheduleOptionsSchema.shape, // learning_rate, lr_scheduler_type, warmup_ratio, warmup_steps
    ...AdamWOptionsSchema.shape, // adam_beta1, adam_beta2, adam_epsilon, weight_decay
    /** Global-norm clipping; 0 switches it off. */
    max_grad_norm: z.number().min(0).default(1),
    /** May be fractional, as in HF (the last epoch is cut short). */
    num_train_epochs: z.number().positive().default(3),
    /** > 0: train exactly this many optimizer steps, overriding num_train_epochs; -1: use epochs. */
    max_steps: z
      .number()
      .int()
      .refine((v) => v === -1 || v >= 1, { error: () => 'expected -1 (train for num_train_epochs) or a positive number of steps' })
      .default(-1),
    /** HF's default is 500; 10 suits runs of a few hundred steps on CPU. */
    logging_steps: stepsOrRatio.default(10),
    dataloader_drop_last: z.boolean().default(false),
    /** Length bucketing of each global batch (shared/data/sampler.ts), as HF's group_by_length. */
    group_by_length: z.boolean().default(false),
    /** Every accepted value is AdamW with torch semantics, which is what kp-coord runs. */
    optim: z
      .enum(['adamw_torch', 'adamw_torch_fused', 'adamw_hf'], { error: () => 'expected adamw_torch, adamw_torch_fused or adamw_hf (kp-coord implements AdamW only)' })
      .default('adamw_torch'),

    // --- lifecycle (HF names; see KEYS_FOR_LATER_ISSUES)
    eval_strategy: intervalStrategy.optional(),
    /** The pre-4.46 transformers name of eval_strategy. */
    evaluation_strategy: intervalStrategy.optional(),
    /** Absent with eval_strategy "steps": logging_steps, as HF does. */
    eval_steps: stepsOrRatio.nullish(),
    save_strategy: z.enum(['no', 'steps', 'epoch', 'best']).default('steps'),
    save_steps: stepsOrRatio.default(500),
    /** Checkpoints kept (the best one is never deleted); absent: all. */
    save_total_limit: positiveInt.nullish(),
    /** HF's name: a checkpoint directory, or true / "latest" for the newest valid one in output_dir. */
    resume_from_checkpoint: z.union([z.string().min(1), z.boolean()]).nullish(),
    load_best_model_at_end: z.boolean().default(false),
    /** Only the eval loss is computed during training ("loss" means "eval_loss", as in HF). */
    metric_for_best_model: z.enum(['eval_loss', 'loss'], { error: () => 'expected "eval_loss" (the only metric computed during training)' }).nullish(),
    greater_is_better: z.boolean().nullish(),
    /** EarlyStoppingCallback's arguments: evaluations without improvement before stopping. */
    early_stopping_patience: positiveInt.nullish(),
    early_stopping_threshold: z.number().min(0).default(0),
    /**
     * Seq2SeqTrainingArguments: at the end, decode the eval split with the final model (the best
     * one with load_best_model_at_end), score it with `kp-coord evaluate`'s metrics.
     */
    predict_with_generate: z.boolean().default(false),
    /** Seq2SeqTrainingArguments' name; here the new tokens decoded at most (eos included). Absent: 64. */
    generation_max_length: positiveInt.nullish(),
    /** Seq2SeqTrainingArguments' name; absent: 1 (greedy). */
    generation_num_beams: positiveInt.max(64).nullish(),
    /** HF generate()'s no_repeat_ngram_size for predict_with_generate; 0 is off. */
    generation_no_repeat_ngram_size: z.number().int().min(0).default(0),

    // --- ZeRO (DeepSpeed names)
    zero_optimization: ZeroOptimizationSchema.prefault({}),
    /**
     * Worker threads each rank's AdamW step is split over (disjoint sub-ranges, bit-identical to
     * one). Above 1 needs ZeRO stage 3, whose shard buffers are shared memory the threads update in
     * place; below stage 3 onnxruntime reads the parameters, and it refuses shared memory.
     */
    optimizer_threads: z.number().int().min(1).max(64).default(1),
    /** A DeepSpeed JSON config, as HF TrainingArguments' `deepspeed`; see deepspeed-config.ts. */
    deepspeed: z.string().min(1).nullish(),

    // --- cluster
    /** Workers the coordinator waits for (the world size). */
    workers: positiveInt.max(1024).default(2),
    heartbeat_interval_ms: z.number().int().min(50).default(2000),
    /**
     * A worker silent this long is declared dead. Generous by default: a CPU step on a large model
     * takes seconds, and a beat must not be lost to a busy event loop.
     */
    heartbeat_timeout_ms: z.number().int().min(100).default(30_000),
    /** Lost workers survived (each rolls back to the last checkpoint) before the run fails, as torchrun's --max-restarts. */
    max_restarts: z.number().int().min(0).default(3),
    /**
     * After a lost worker, how long to wait for a replacement to register before going on with
     * the survivors (a cluster needs time to reschedule a pod; local mode restarts it at once).
     */
    replacement_grace_ms: z.number().int().min(0).default(60_000),
    nats: NatsSchema.optional(),

    // --- HF keys accepted and not used (HF_KEYS_NOT_USED)
    fp16: z.boolean().optional(),
    bf16: z.boolean().optional(),
    tf32: z.boolean().nullish(),
    do_train: z.boolean().optional(),
    do_eval: z.boolean().optional(),
    do_predict: z.boolean().optional(),
    overwrite_output_dir: z.boolean().optional(),
    logging_dir: z.string().nullish(),
    report_to: z.union([z.string(), z.array(z.string())]).nullish(),
    disable_tqdm: z.boolean().nullish(),
    dataloader_num_workers: z.number().int().min(0).optional(),
    dataloader_pin_memory: z.boolean().optional(),
    remove_unused_columns: z.boolean().optional(),
  })
  .strict();

/** A config as written (every key optional). */
export type RunConfigInput = z.input<typeof RunConfigSchema>;
/** A config with its defaults filled in. */
export type RunConfig = z.output<typeof RunConfigSchema>;
export type DataFiles = z.output<typeof DataFilesSchema>;
