import { z } from 'zod';
import type { ModelType } from '../data/data-cache.js';

// The run config's `lora` section: PEFT LoraConfig's names and defaults (peft 0.1x), so an
// adapter_config.json's LoRA keys read the same here. What kp-coord cannot do is refused with the
// reason, never accepted and ignored. Absent or null: full fine-tuning.

/** Leaf module names LoRA may wrap, per family (PEFT matches a module whose name ends in one). */
export const LORA_MODULES: Readonly<Record<ModelType, { readonly defaults: readonly string[]; readonly known: readonly string[] }>> = Object.freeze({
  // PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.
  gpt_neox: { defaults: ['query_key_value'], known: ['query_key_value', 'dense', 'dense_h_to_4h', 'dense_4h_to_h'] },
  t5: { defaults: ['q', 'v'], known: ['q', 'k', 'v', 'o', 'wi', 'wi_0', 'wi_1', 'wo'] },
  bart: { defaults: ['q_proj', 'v_proj'], known: ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'] },
});

/** PEFT's TaskType values for the families. */
export const LORA_TASK_TYPE: Readonly<Record<ModelType, string>> = Object.freeze({ gpt_neox: 'CAUSAL_LM', t5: 'SEQ_2_SEQ_LM', bart: 'SEQ_2_SEQ_LM' });

const only = <T extends string | boolean>(value: T, why: string) => z.literal(value, { error: () => `only ${JSON.stringify(value)} is supported: ${why}` });

export const LoraConfigSchema = z
  .object({
    /** Rank of the update B·A. */
    r: z.number().int().min(1).default(8),
    /** The update is scaled by lora_alpha / r (lora_alpha / sqrt(r) with use_rslora). */
    lora_alpha: z.number().positive().default(8),
    /** Dropout on the LoRA branch's input (training only). */
    lora_dropout: z.number().min(0).lt(1).default(0),
    /** Module names to wrap; null: the family's default (gpt_neox: query_key_value; t5: q, v). */
    target_modules: z
      .array(z.string().min(1), { error: () => 'expected a list of module names, e.g. [query_key_value] (PEFT\'s regex string and "all-linear" are not supported)' })
      .min(1)
      .nullish(),
    bias: only('none', 'kp-coord trains the LoRA matrices only, not the biases ("all", "lora_only")').default('none'),
    fan_in_fan_out: only(false, 'true is for Conv1D weights (GPT-2); GPT-NeoX and T5 use nn.Linear').default(false),
    init_lora_weights: only(true, 'PEFT\'s default init (A Kaiming-uniform, B zero); false, "gaussian", "pissa", "olora", "loftq" are not implemented').default(true),
    /** Rank-stabilised scaling lora_alpha / sqrt(r). */
    use_rslora: z.boolean().default(false),
    use_dora: only(false, 'DoRA is not implemented').default(false),
    modules_to_save: z.array(z.string()).max(0, { error: () => 'must be empty or null: training whole modules beside LoRA is not implemented' }).nullish(),
    layers_to_transform: z.null({ error: () => 'must be null: LoRA goes into every layer (per-layer selection is not implemented)' }).optional(),
    layers_pattern: z.null({ error: () => 'must be null (layers_to_transform is not implemented)' }).optional(),
    rank_pattern: z.record(z.string(), z.unknown()).refine((o) => Object.keys(o).length === 0, { error: () => 'must be empty: one r for every module' }).optional(),
    alpha_pattern: z.record(z.string(), z.unknown()).refine((o) => Object.keys(o).length === 0, { error: () => 'must be empty: one lora_alpha for every module' }).optional(),
    /** PEFT's TaskType; when given it must match the model (CAUSAL_LM for gpt_neox, SEQ_2_SEQ_LM for t5). */
    task_type: z.enum(['CAUSAL_LM', 'SEQ_2_SEQ_LM']).nullish(),
    peft_type: only('LORA', 'this section configures LoRA').optional(),
    inference_mode: only(false, 'the section configures training').optional(),
  })
  .strict();

export type LoraConfig = z.output<typeof LoraConfigSchema>;

/** What a worker needs to build the adapters (TrainPlan `lora`). */
export interface ResolvedLora {
  readonly r: number;
  readonly lora_alpha: number;
  readonly lora_dropout: number;
  /** Never empty: the family default filled in. */
  readonly target_modules: readonly string[];
  /** lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora: the factor on B·A·x. */
  readonly scaling: number;
}

/** Problems of a LoRA section against the model family (field path inside `lora`, message). */
export function loraProblems(lora: LoraConfig, modelType: ModelType): Array<{ field: string; message: string }> {
  const out: Array<{ field: string; message: string }> = [];
  const { known } = LORA_MODULES[modelType];
  for (const m of lora.target_modules ?? []) {
    if (!known.includes(m)) out.push({ field: 'target_modules', message: `${JSON.stringify(m)} is not a linear module of ${modelType}; known: ${known.join(', ')}` });
  }
  if (lora.task_type != null && lora.task_type !== LORA_TASK_TYPE[modelType]) {
    out.push({ field: 'task_type', message: `${lora.task_type} does not match the model (${modelType} is ${LORA_TASK_TYPE[modelType]})` });
  }
  return out;
}

export function resolveLora(lora: LoraConfig, modelType: ModelType): ResolvedLora {
  return {
    r: lora.r,
    lora_alpha: lora.lora_alpha,
    lora_dropout: lora.lora_dropout,
    target_modules: [...(lora.target_modules ?? LORA_MODULES[modelType].defaults)],
    scaling: lora.use_rslora ? lora.lora_alpha / Math.sqrt(lora.r) : lora.lora_alpha / lora.r,
  };
}
