import { z } from 'zod';

// The `zero_optimization` section in DeepSpeed's own names (DeepSpeedZeroConfig), so a section
// copied from a ds_config.json validates as it is. Unknown keys are errors, as in DeepSpeed (whose
// config models forbid extra fields). Defaults are DeepSpeed's.
//
// [Note: used vs accepted] kp-coord acts on the keys in ZERO_KEYS_ACTED_ON. Every other key here is
// accepted so a real DeepSpeed file loads, and when a config gives one, resolveRunConfig lists it in
// `ignored` with the reason below: those keys tune CUDA memory, NVMe swapping, quantised
// communication or DeepSpeed's own bucketing heuristics, none of which change the math of a step.

/** What each stage partitions across ranks, in addition to the stages below it (ZeRO paper, sec. 5). */
export const SHARDING_POLICY_BY_STAGE = Object.freeze({
  0: 'replicated',
  1: 'partition-optimizer-states',
  2: 'partition-gradients',
  3: 'partition-parameters',
} as const);

export type ZeroStage = keyof typeof SHARDING_POLICY_BY_STAGE;
export type ShardingPolicyName = (typeof SHARDING_POLICY_BY_STAGE)[ZeroStage];

/** DeepSpeed's default bucket size (elements) for reduce and all-gather buckets. */
export const DEEPSPEED_BUCKET_DEFAULT = 500_000_000;

/** Keys (dotted, inside zero_optimization) the coordinator and workers act on. */
// The stage-3 keys (both DeepSpeed spellings) are acted on at stage 3 and reported as ignored
// below it, as is offload_param.device.
export const ZERO_KEYS_ACTED_ON: readonly string[] = Object.freeze(['stage', 'offload_optimizer.device', 'reduce_bucket_size', 'overlap_comm']);

/** Stage-3 settings: DeepSpeed's field name, its alias, its default, and HF's "auto" (from d_model) where HF fills one. */
export const STAGE3_KEYS = Object.freeze({
  prefetch_bucket_size: { alias: 'stage3_prefetch_bucket_size', default: 50_000_000, auto: (d: number) => Math.floor(0.9 * d * d) },
  param_persistence_threshold: { alias: 'stage3_param_persistence_threshold', default: 100_000, auto: (d: number) => 10 * d },
  max_live_parameters: { alias: 'stage3_max_live_parameters', default: 1_000_000_000, auto: null },
  max_reuse_distance: { alias: 'stage3_max_reuse_distance', default: 1_000_000_000, auto: null },
} as const);
export type Stage3Key = keyof typeof STAGE3_KEYS;

/** Keys (either spelling) acted on at stage 3 only. */
export const STAGE3_KEYS_ACTED_ON: readonly string[] = Object.freeze([
  'offload_param.device',
  ...Object.entries(STAGE3_KEYS).flatMap(([k, v]) => [k, v.alias]),
]);

const count = z.number().int().min(0);
const positiveCount = z.number().int().min(1);
/** The three values HF fills from the model's hidden size when they are "auto". */
const autoOr = <T extends z.ZodType>(s: T) => z.union([z.literal('auto'), s]);

const offloadDevice = z.enum(['none', 'cpu'], {
  error: () => 'expected "none" or "cpu" (NVMe offload is not implemented)',
});

const OffloadOptimizerSchema = z
  .object({
    device: offloadDevice.default('none'),
    nvme_path: z.string().nullish(),
    buffer_count: positiveCount.optional(),
    pin_memory: z.boolean().optional(),
    pipeline_read: z.boolean().optional(),
    pipeline_write: z.boolean().optional(),
    fast_init: z.boolean().optional(),
    ratio: z.number().min(0).max(1).optional(),
  })
  .strict();

const OffloadParamSchema = z
  .object({
    device: offloadDevice.default('none'),
    nvme_path: z.string().nullish(),
    buffer_count: positiveCount.optional(),
    buffer_size: positiveCount.optional(),
    max_in_cpu: positiveCount.optional(),
    pin_memory: z.boolean().optional(),
  })
  .strict();

export const ZeroOptimizationSchema = z
  .object({
    /** 0 replicated (all-reduce), 1 optimizer states, 2 + gradients, 3 + parameters partitioned. */
    stage: z
      .number({ error: () => 'expected 0, 1, 2 or 3' })
      .int({ error: () => 'expected 0, 1, 2 or 3' })
      .min(0, { error: () => 'expected 0, 1, 2 or 3' })
      .max(3, { error: () => 'expected 0, 1, 2 or 3' })
      .default(0),
    offload_optimizer: OffloadOptimizerSchema.default({ device: 'none' }),
    offload_param: OffloadParamSchema.default({ device: 'none' }),
    /** Elements per gradient reduce bucket; "auto" = hidden size squared, as HF fills it. */
    reduce_bucket_size: autoOr(positiveCount).default(DEEPSPEED_BUCKET_DEFAULT),
    /** Elements per parameter all-gather bucket. */
    allgather_bucket_size: positiveCount.default(DEEPSPEED_BUCKET_DEFAULT),
    /** Overlap gradient communication with backward; DeepSpeed's default is true at stage 3 only. */
    overlap_comm: z.boolean().optional(),
    contiguous_gradients: z.boolean().optional(),
    reduce_scatter: z.boolean().optional(),
    allgather_partitions: z.boolean().optional(),
    round_robin_gradients: z.boolean().optional(),
    load_from_fp32_weights: z.boolean().optional(),
    elastic_checkpoint: z.boolean().optional(),
    ignore_unused_parameters: z.boolean().optional(),
    legacy_stage1: z.boolean().optional(),
    use_multi_rank_bucket_allreduce: z.boolean().optional(),
    sub_group_size: positiveCount.optional(),
    stage3_prefetch_bucket_size: autoOr(count).optional(),
    prefetch_bucket_size: autoOr(count).optional(),
    stage3_param_persistence_threshold: autoOr(count).optional(),
    param_persistence_threshold: autoOr(count).optional(),
    stage3_model_persistence_threshold: count.optional(),
    model_persistence_threshold: count.optional(),
    stage3_max_live_parameters: autoOr(count).optional(),
    max_live_parameters: autoOr(count).optional(),
    stage3_max_reuse_distance: autoOr(count).optional(),
    max_reuse_distance: autoOr(count).optional(),
    stage3_gather_16bit_weights_on_model_save: z.boolean().optional(),
    gather_16bit_weights_on_model_save: z.boolean().optional(),
    stage3_gather_fp16_weights_on_model_save: z.boolean().optional(),
    stage3_module_granularity_threshold: count.optional(),
    use_all_reduce_for_fetch_params: z.boolean().optional(),
    zero_hpz_partition_size: positiveCount.optional(),
    zero_quantized_weights: z.boolean().optional(),
    zero_quantized_nontrainable_weights: z.boolean().optional(),
    zero_quantized_gradients: z.boolean().optional(),
    zeropp_loco_param: z.record(z.string(), z.unknown()).nullish(),
    mics_shard_size: z.number().int().optional(),
    mics_hierarchical_params_gather: z.boolean().optional(),
    memory_efficient_linear: z.boolean().optional(),
    pipeline_loading_checkpoint: z.boolean().optional(),
    override_module_apply: z.boolean().optional(),
    log_trace_cache_warnings: z.boolean().optional(),
  })
  .strict();

export type ZeroOptimizationInput = z.input<typeof ZeroOptimizationSchema>;
export type ZeroOptimization = z.output<typeof ZeroOptimizationSchema>;

/** Why a given zero_optimization key is not acted on (see [Note: used vs accepted]). */
export function zeroIgnoreReason(key: string, stage: number): string {
  if (key.startsWith('offload_optimizer.') || key.startsWith('offload_param.')) {
    return 'CUDA pinned memory and NVMe swapping settings; offloaded state lives in ordinary host memory here';
  }
  if (key.includes('stage3') || key.includes('prefetch') || key.includes('persistence') || key.includes('live_parameters') || key.includes('reuse_distance') || key.includes('16bit') || key.includes('fp16') || key.includes('granularity') || key.includes('fetch_params')) {
    return stage < 3 ? 'a stage 3 setting; this run uses stage ' + stage : 'stage 3 tuning of DeepSpeed\'s module hooks and 16-bit saving; kp-coord gathers per block unit and saves fp32';
  }
  if (key.includes('quantized') || key.includes('hpz') || key.includes('loco') || key.includes('mics')) {
    return 'ZeRO++/MiCS communication variants are not implemented; plain reduce-scatter/all-gather is used';
  }
  return 'a DeepSpeed implementation detail with no effect on results here (one flat, contiguous buffer; reduce-scatter and all-gather always)';
}
