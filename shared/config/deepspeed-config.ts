import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { ConfigIssues, knownKeysAt, showValue, unknownKeyMessage, type FieldLocator } from './config-issues.js';
import type { ConfigText, FieldPath } from './config-text.js';
import { suggestKey } from './did-you-mean.js';
import { ZeroOptimizationSchema } from './zero-config.js';

// A DeepSpeed JSON config given as `deepspeed: ds_config.json`, read the way HF Trainer reads it:
//
// - "auto" takes our value (HF's trainer_config_process): train_micro_batch_size_per_gpu =
//   per_device_train_batch_size, gradient_accumulation_steps, train_batch_size = per-device x
//   accumulation x workers, gradient_clipping = max_grad_norm, optimizer lr/betas/eps/weight_decay,
//   scheduler warmup_max_lr = learning_rate, warmup_num_steps = warm-up, total_num_steps = the run's.
// - An explicit DeepSpeed value where our config also sets the key explicitly must agree, or it is
//   an error naming both (HF reports these "mismatches" the same way). Where our config leaves the
//   key at its default, the DeepSpeed value is taken: a plain DeepSpeed file means what it says.
// - zero_optimization merges key by key with our own `zero_optimization` section under the same
//   rule: a key in both must agree; a key in one is taken from it.
// - The scheduler section picks the schedule, as in HF (DeepSpeed's scheduler replaces the
//   Trainer's): WarmupDecayLR is HF "linear", WarmupLR is "constant_with_warmup".
// - Mixed precision (fp16/bf16/amp), logging and communication-tuning keys are accepted and listed
//   in `ignored` with the reason. Features that would change training (pipeline parallelism,
//   curriculum learning, compression, ...) are errors: silently ignoring them would mislead.

/** One config key accepted but not acted on, with why; the coordinator logs these. */
export interface IgnoredKey {
  /** Dotted key, e.g. "bf16" or "zero_optimization.sub_group_size". */
  readonly key: string;
  /** The file (or "--set") that set it. */
  readonly from: string;
  readonly reason: string;
}

const auto = z.literal('auto');
const autoOr = <T extends z.ZodType>(s: T) => z.union([auto, s]);
const positiveInt = z.number().int().min(1);
const beta = z.number().min(0).lt(1);

const MIXED_PRECISION = 'mixed precision: kp-coord trains in float32 on CPU';
const LOGGING = 'DeepSpeed logging; kp-coord logs progress itself (and publishes it on NATS)';
const COMMUNICATION = 'gradient communication detail: kp-coord reduces float32 gradient sums and divides by the global token count';

/** Top-level DeepSpeed keys accepted and not acted on. */
const DS_KEYS_IGNORED: Readonly<Record<string, string>> = Object.freeze({
  fp16: MIXED_PRECISION,
  bf16: MIXED_PRECISION,
  amp: MIXED_PRECISION,
  torch_autocast: MIXED_PRECISION,
  data_types: MIXED_PRECISION,
  communication_data_type: COMMUNICATION,
  seq_parallel_communication_data_type: COMMUNICATION,
  prescale_gradients: COMMUNICATION,
  gradient_predivide_factor: COMMUNICATION,
  sparse_gradients: COMMUNICATION,
  disable_allgather: COMMUNICATION,
  steps_per_print: LOGGING,
  wall_clock_breakdown: LOGGING,
  memory_breakdown: LOGGING,
  dump_state: LOGGING,
  flops_profiler: LOGGING,
  tensorboard: LOGGING,
  wandb: LOGGING,
  csv_monitor: LOGGING,
  comet: LOGGING,
  comms_logger: LOGGING,
  timers: LOGGING,
  zero_allow_untested_optimizer: 'DeepSpeed optimizer vetting; kp-coord always runs its own AdamW',
  zero_force_ds_cpu_optimizer: 'DeepSpeed optimizer vetting; kp-coord always runs its own AdamW',
  activation_checkpointing: 'activation checkpointing is not implemented yet (it saves memory; results are the same)',
  checkpoint: 'checkpoint layout is kp-coord\'s own (see the checkpoint manifest)',
  aio: 'NVMe async I/O settings; NVMe offload is not implemented',
});

/** Top-level DeepSpeed features that change what training computes; refusing beats ignoring. */
const DS_KEYS_REFUSED: Readonly<Record<string, string>> = Object.freeze({
  pipeline: 'pipeline parallelism',
  curriculum_learning: 'curriculum learning',
  data_efficiency: 'DeepSpeed data efficiency (curriculum, random layer-token drop)',
  progressive_layer_drop: 'progressive layer drop',
  compression_training: 'compression training',
  quantize_training: 'quantised training',
  sparse_attention: 'sparse attention',
  elasticity: 'elastic batch sizes',
  hybrid_engine: 'the hybrid (RLHF) engine',
  eigenvalue: 'eigenvalue computation',
  autotuning: 'the autotuner',
});

const AdamParamsSchema = z
  .object({
    lr: autoOr(z.number().min(0)).optional(),
    betas: autoOr(z.tuple([beta, beta])).optional(),
    eps: autoOr(z.number().min(0)).optional(),
    weight_decay: autoOr(z.number().min(0)).optional(),
    adam_w_mode: z.literal(true, { error: () => 'only decoupled weight decay (AdamW) is implemented' }).optional(),
    bias_correction: z.literal(true, { error: () => 'Adam without bias correction is not implemented' }).optional(),
    amsgrad: z.literal(false, { error: () => 'AMSGrad is not implemented' }).optional(),
    torch_adam: z.boolean().optional(),
    fused: z.boolean().optional(),
  })
  .strict();

const SCHEDULER_TO_HF = Object.freeze({ WarmupDecayLR: 'linear', WarmupLR: 'constant_with_warmup' } as const);

const SchedulerParamsSchema = z
  .object({
    warmup_min_lr: autoOr(z.literal(0, { error: () => 'only 0 is implemented (HF schedules warm up from 0)' })).optional(),
    warmup_max_lr: autoOr(z.number().min(0)).optional(),
    warmup_num_steps: autoOr(z.number().int().min(0)).optional(),
    total_num_steps: autoOr(positiveInt).optional(),
    /** DeepSpeed's default is "log"; HF's schedules warm up linearly. */
    warmup_type: z.enum(['linear', 'log']).optional(),
    last_batch_iteration: z.literal(-1, { error: () => 'only -1 (a fresh schedule) is accepted; resuming restores the step itself' }).optional(),
  })
  .strict();

export const DeepSpeedFileSchema = z
  .object({
    train_batch_size: autoOr(positiveInt).optional(),
    train_micro_batch_size_per_gpu: autoOr(positiveInt).optional(),
    gradient_accumulation_steps: autoOr(positiveInt).optional(),
    gradient_clipping: autoOr(z.number().min(0)).optional(),
    optimizer: z
      .object({
        type: z.string().refine((t) => ['adam', 'adamw'].includes(t.toLowerCase()), { error: () => 'expected "AdamW" or "Adam" (kp-coord implements AdamW only)' }),
        params: AdamParamsSchema.prefault({}),
      })
      .strict()
      .optional(),
    scheduler: z
      .object({
        type: z.enum(['WarmupDecayLR', 'WarmupLR'], {
          error: () => 'expected "WarmupDecayLR" (HF linear) or "WarmupLR" (HF constant_with_warmup); other DeepSpeed schedulers are not implemented: drop the section and use lr_scheduler_type',
        }),
        params: SchedulerParamsSchema.prefault({}),
      })
      .strict()
      .optional(),
    zero_optimization: ZeroOptimizationSchema.optional(),
    fp16: z.object({ enabled: z.union([z.boolean(), auto]).optional() }).loose().optional(),
    bf16: z.object({ enabled: z.union([z.boolean(), auto]).optional() }).loose().optional(),
  })
  .loose();

type DeepSpeedFile = z.output<typeof DeepSpeedFileSchema>;

/** The values of our config the DeepSpeed file is reconciled with (defaults filled in). */
export interface OurTrainingValues {
  readonly per_device_train_batch_size: number;
  readonly gradient_accumulation_steps: number;
  readonly max_grad_norm: number;
  readonly learning_rate: number;
  readonly adam_beta1: number;
  readonly adam_beta2: number;
  readonly adam_epsilon: number;
  readonly weight_decay: number;
  readonly lr_scheduler_type: string;
  readonly warmup_steps: number;
  readonly warmup_ratio: number;
  readonly max_steps: number;
  readonly workers: number;
}

export interface DeepSpeedMergeInput {
  readonly ds: ConfigText;
  /** Our config as written (after --set), the object that receives adopted values. */
  readonly raw: Record<string, unknown>;
  /** Our values; undefined when some are invalid (then the file is only validated). */
  readonly ours: OurTrainingValues | undefined;
  /** Where our config sets a field, or undefined when it leaves it at its default. */
  readonly oursAt: (path: FieldPath) => string | undefined;
  readonly issues: ConfigIssues;
}

export interface DeepSpeedMergeResult {
  /** `raw` with the DeepSpeed values it adopts and the merged zero_optimization written in. */
  readonly raw: Record<string, unknown>;
  readonly ignored: readonly IgnoredKey[];
  /** Where each merged zero_optimization key came from (for messages about it). */
  readonly zeroFrom: (key: string) => string | undefined;
}

/** Validate the DeepSpeed file and fold it into our raw config; problems go to `issues`. */
export function mergeDeepSpeedFile(input: DeepSpeedMergeInput): DeepSpeedMergeResult {
  const { ds, issues } = input;
  const locateDs: FieldLocator = (path) => lineText(ds, path);
  const ignored: IgnoredKey[] = [];
  const value = ds.value ?? {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    issues.add(locateDs, [], 'a DeepSpeed config must be a JSON object');
    return { raw: input.raw, ignored, zeroFrom: () => undefined };
  }
  const dsRaw = value as Record<string, unknown>;
  const known = Object.keys(DeepSpeedFileSchema.shape);
  for (const key of Object.keys(dsRaw)) {
    if (known.includes(key)) continue;
    const refused = DS_KEYS_REFUSED[key];
    const reason = DS_KEYS_IGNORED[key];
    if (refused !== undefined) issues.add(locateDs, [key], `${refused} is not implemented in kp-coord; remove the section`);
    else if (reason !== undefined) ignored.push({ key, from: ds.file, reason });
    else if (suggestKey(key, [...known, ...Object.keys(DS_KEYS_IGNORED)]) !== undefined) issues.add(locateDs, [key], unknownKeyMessage(key, [...known, ...Object.keys(DS_KEYS_IGNORED)]));
    // DeepSpeed itself ignores top-level keys it does not know; so does kp-coord, saying so.
    else ignored.push({ key, from: ds.file, reason: 'not a DeepSpeed key kp-coord knows (DeepSpeed ignores unknown top-level keys too)' });
  }
  for (const key of ['fp16', 'bf16'] as const) if (dsRaw[key] !== undefined) ignored.push({ key, from: ds.file, reason: MIXED_PRECISION });

  const parsed = DeepSpeedFileSchema.safeParse(dsRaw);
  if (!parsed.success) issues.addZod(locateDs, parsed.error, dsRaw, DeepSpeedFileSchema);
  // The ZeRO section merges whenever it is valid by itself, so its stage is checked even when
  // other parts of the file are wrong.
  const zeroValid = ZeroOptimizationSchema.optional().safeParse(dsRaw.zero_optimization).success;
  const zero = zeroValid ? mergeZero(input, dsRaw.zero_optimization, locateDs) : { merged: undefined, from: () => undefined };
  const raw = parsed.success && input.ours !== undefined ? reconcileTraining(input, input.ours, parsed.data, locateDs) : { ...input.raw };
  if (zero.merged !== undefined) raw.zero_optimization = zero.merged;
  return { raw, ignored, zeroFrom: zero.from };
}

function lineText(text: ConfigText, path: FieldPath): string {
  const line = text.lineOf(path);
  return line === undefined ? text.file : `${text.file} line ${line}`;
}

// The reconciliation table: which DeepSpeed key stands for which of ours.
function reconcileTraining(input: DeepSpeedMergeInput, ours: OurTrainingValues, ds: DeepSpeedFile, locateDs: FieldLocator): Record<string, unknown> {
  const { oursAt, issues } = input;
  const raw: Record<string, unknown> = { ...input.raw };
  // Where each of our keys' current value came from: our config, or a DeepSpeed key adopted here.
  const origin = new Map<string, string>();
  const values: Record<string, unknown> = { ...ours };
  const current = (key: keyof OurTrainingValues): unknown => values[key];
  const setAt = (key: keyof OurTrainingValues): string | undefined => origin.get(key) ?? oursAt([key]);

  const reconcile = (dsPath: FieldPath, dsValue: unknown, key: keyof OurTrainingValues, adopt: unknown = dsValue): void => {
    if (dsValue === undefined || dsValue === 'auto') return;
    const mine = current(key);
    if (isDeepStrictEqual(mine, adopt)) return;
    const at = setAt(key);
    if (at !== undefined) {
      issues.add(locateDs, dsPath, `${showValue(dsValue)} conflicts with ${key}: ${showValue(mine)} (${at}); make them equal or set the DeepSpeed value to "auto"`);
      return;
    }
    raw[key] = adopt;
    values[key] = adopt;
    origin.set(key, `${locateDs(dsPath)}, ${dsPath.join('.')}`);
  };

  reconcile(['train_micro_batch_size_per_gpu'], ds.train_micro_batch_size_per_gpu, 'per_device_train_batch_size');
  reconcile(['gradient_accumulation_steps'], ds.gradient_accumulation_steps, 'gradient_accumulation_steps');
  reconcile(['gradient_clipping'], ds.gradient_clipping, 'max_grad_norm');
  const opt = ds.optimizer?.params;
  if (opt !== undefined) {
    reconcile(['optimizer', 'params', 'lr'], opt.lr, 'learning_rate');
    if (Array.isArray(opt.betas)) {
      reconcile(['optimizer', 'params', 'betas', 0], opt.betas[0], 'adam_beta1');
      reconcile(['optimizer', 'params', 'betas', 1], opt.betas[1], 'adam_beta2');
    }
    reconcile(['optimizer', 'params', 'eps'], opt.eps, 'adam_epsilon');
    reconcile(['optimizer', 'params', 'weight_decay'], opt.weight_decay, 'weight_decay');
  }
  const sched = ds.scheduler;
  if (sched !== undefined) {
    reconcile(['scheduler', 'type'], sched.type, 'lr_scheduler_type', SCHEDULER_TO_HF[sched.type]);
    const p = sched.params;
    reconcile(['scheduler', 'params', 'warmup_max_lr'], p.warmup_max_lr, 'learning_rate');
    if (typeof p.warmup_num_steps === 'number' && current('warmup_ratio') !== 0 && setAt('warmup_steps') === undefined) {
      issues.add(locateDs, ['scheduler', 'params', 'warmup_num_steps'], `${p.warmup_num_steps} conflicts with warmup_ratio: ${showValue(current('warmup_ratio'))} (${setAt('warmup_ratio') ?? 'its value'}); set warmup_num_steps to "auto" or drop warmup_ratio`);
    } else {
      reconcile(['scheduler', 'params', 'warmup_num_steps'], p.warmup_num_steps, 'warmup_steps');
    }
    if (typeof p.total_num_steps === 'number') {
      if (current('max_steps') === -1) {
        issues.add(locateDs, ['scheduler', 'params', 'total_num_steps'], `${p.total_num_steps}: the run's length comes from num_train_epochs (max_steps is -1); set total_num_steps to "auto", or set max_steps: ${p.total_num_steps}`);
      } else {
        reconcile(['scheduler', 'params', 'total_num_steps'], p.total_num_steps, 'max_steps');
      }
    }
    const warms = current('warmup_steps') !== 0 || current('warmup_ratio') !== 0;
    if (warms && p.warmup_type !== 'linear') {
      issues.add(locateDs, ['scheduler', 'params', 'warmup_type'], `${p.warmup_type === undefined ? 'absent, so DeepSpeed would warm up with its default "log" curve' : '"log"'}, which is not implemented; set "warmup_type": "linear" (HF's schedules warm up linearly)`);
    }
  }
  if (typeof ds.train_batch_size === 'number') {
    const micro = current('per_device_train_batch_size') as number;
    const accum = current('gradient_accumulation_steps') as number;
    const global = micro * accum * ours.workers;
    if (global !== ds.train_batch_size) {
      issues.add(
        locateDs,
        ['train_batch_size'],
        `${ds.train_batch_size} conflicts with per_device_train_batch_size ${micro} x gradient_accumulation_steps ${accum} x workers ${ours.workers} = ${global}; make them equal or set train_batch_size to "auto"`,
      );
    }
  }
  return raw;
}

// zero_optimization: ours and the file's, key by key (offload_* one level deeper).
function mergeZero(input: DeepSpeedMergeInput, dsZero: unknown, locateDs: FieldLocator): { merged: Record<string, unknown> | undefined; from: (key: string) => string | undefined } {
  const mine = input.raw.zero_optimization;
  const fromDs = new Set<string>();
  if (dsZero === undefined || dsZero === null || typeof dsZero !== 'object') return { merged: undefined, from: (k) => input.oursAt(['zero_optimization', ...k.split('.')]) };
  const merged: Record<string, unknown> = isPlainObject(mine) ? structuredClone(mine) : {};
  const nested = knownKeysAt(ZeroOptimizationSchema, []).filter((k) => knownKeysAt(ZeroOptimizationSchema, [k]).length > 0);
  const take = (path: string[], dsValue: unknown, into: Record<string, unknown>): void => {
    const key = path[path.length - 1]!;
    if (!Object.hasOwn(into, key)) {
      into[key] = dsValue;
      fromDs.add(path.join('.'));
      return;
    }
    if (isDeepStrictEqual(into[key], dsValue)) return;
    const at = input.oursAt(['zero_optimization', ...path]) ?? 'our config';
    input.issues.add(locateDs, ['zero_optimization', ...path], `${showValue(dsValue)} conflicts with zero_optimization.${path.join('.')}: ${showValue(into[key])} (${at}); make them equal or remove one`);
  };
  for (const [key, dsValue] of Object.entries(dsZero as Record<string, unknown>)) {
    if (nested.includes(key) && isPlainObject(dsValue) && isPlainObject(merged[key])) {
      for (const [sub, v] of Object.entries(dsValue)) take([key, sub], v, merged[key] as Record<string, unknown>);
    } else {
      take([key], dsValue, merged);
    }
  }
  const from = (key: string): string | undefined => {
    const path = key.split('.');
    const viaDs = fromDs.has(key) || (path.length > 1 && fromDs.has(path[0]!));
    return viaDs ? locateDs(['zero_optimization', ...path]) : input.oursAt(['zero_optimization', ...path]);
  };
  return { merged, from };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
