import { z } from 'zod';
import { KpCoordError } from '../errors.js';
import { rngStream, RngDomain } from '../random.js';
import { formatZodIssues } from '../zod-issues.js';
import { numel, type ParamSpec } from './t5-params.js';

// [Note: LoRA] Low-rank adapters as PEFT's `LoraConfig` + `get_peft_model` make them, so that what we
// train loads with `PeftModel.from_pretrained` and merges with `merge_and_unload`:
//
//   y = x W^T (+ b) + (dropout(x) A^T) B^T * scale,   A [r, in], B [out, r], scale = lora_alpha / r
//
// on every nn.Linear whose module name equals a target or ends with `.<target>` (PEFT's
// `check_target_module_exists` for a list of names). With LoRA the *trainable* flat buffer (reduced,
// optimised, checkpointed) holds only the adapters, in the order PEFT's `named_parameters()` lists
// them (base module order, lora_A before lora_B) under the names PEFT saves them with
// (`base_model.model.<module>.lora_A.weight`, adapter name `default` dropped); the frozen base
// weights keep their HF names in a buffer of their own. PEFT's default init (`init_lora_weights=True`):
// A by `kaiming_uniform_(a=sqrt(5))`, i.e. U(-1/sqrt(in), 1/sqrt(in)) since fan_in = in for an [r, in]
// tensor (gain sqrt(2/(1+5)), bound = sqrt(3) * gain / sqrt(fan_in)); B zeros, so a fresh adapter
// leaves the model unchanged.

export const LoraSettingsSchema = z.strictObject({
  r: z.number().int().positive(),
  alpha: z.number().positive(),
  dropout: z.number().min(0).lt(1),
  targetModules: z.array(z.string().min(1)).min(1).readonly(),
  /** PEFT's use_rslora: scale lora_alpha / sqrt(r) instead of lora_alpha / r. */
  useRslora: z.boolean().optional(),
});

export type LoraSettings = Readonly<z.infer<typeof LoraSettingsSchema>>;

export type LoraModelType = 't5' | 'gpt_neox' | 'bart';

/** PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING for the models we build. */
export const DEFAULT_LORA_TARGETS: Readonly<Record<LoraModelType, readonly string[]>> = Object.freeze({
  t5: Object.freeze(['q', 'v']),
  gpt_neox: Object.freeze(['query_key_value']),
  bart: Object.freeze(['q_proj', 'v_proj']),
});

/** What PEFT's PeftModel puts in front of the base model's names. */
export const PEFT_PREFIX = 'base_model.model.';

/** Modules holding a 2-D `.weight` that are embeddings, not nn.Linear (LoRA here adapts Linear only). */
const EMBEDDINGS: Readonly<Record<LoraModelType, readonly string[]>> = {
  t5: ['shared', 'embed_tokens', 'relative_attention_bias'],
  gpt_neox: ['embed_in'],
  bart: ['shared', 'embed_positions'],
};

/** Streams of the adapter init: rngStream(seed, RngDomain.init, LORA_INIT_KEY, adapter index). */
const LORA_INIT_KEY = 0x4c6f5241; // 'LoRA': distinct from the base init's (seed, init, index) tuples

export class LoraConfigError extends KpCoordError {}

export interface LoraParamSpec {
  /** PEFT's saved name: `base_model.model.<module>.lora_A.weight` / `.lora_B.weight`. */
  readonly name: string;
  /** A: [r, in_features]; B: [out_features, r]. */
  readonly shape: readonly number[];
  /** The HF module it adapts, e.g. `encoder.block.0.layer.0.SelfAttention.q`. */
  readonly module: string;
  readonly role: 'A' | 'B';
  /** HF name of the frozen weight it adapts (`<module>.weight`). */
  readonly baseWeight: string;
  readonly init: { readonly kind: 'uniform'; readonly bound: number } | { readonly kind: 'zeros' };
}

/** `lora_alpha / r`, or `lora_alpha / sqrt(r)` with use_rslora (PEFT's `scaling`). */
export function loraScale(settings: Pick<LoraSettings, 'r' | 'alpha' | 'useRslora'>): number {
  return settings.useRslora ? settings.alpha / Math.sqrt(settings.r) : settings.alpha / settings.r;
}

/** PEFT's rule for a list of target names: the module name equals a target or ends with `.<target>`. */
export function matchesTarget(module: string, target: string): boolean {
  return module === target || module.endsWith(`.${target}`);
}

export function peftName(module: string, role: 'A' | 'B'): string {
  return `${PEFT_PREFIX}${module}.lora_${role}.weight`;
}

export function checkLoraSettings(settings: LoraSettings): LoraSettings {
  const parsed = LoraSettingsSchema.safeParse(settings);
  if (!parsed.success) throw new LoraConfigError(`invalid LoRA settings: ${formatZodIssues(parsed.error)}`);
  return parsed.data;
}

/**
 * The adapter parameters for `baseSpecs` (the base model's named_parameters, HF names): an A and a
 * B per targeted Linear, in base order. Throws LoraConfigError naming a target that matches no
 * module, or one that matches something other than a Linear weight.
 */
export function loraParamSpecs(baseSpecs: readonly Pick<ParamSpec, 'name' | 'shape'>[], settings: LoraSettings, modelType: LoraModelType): LoraParamSpec[] {
  const { r, targetModules } = checkLoraSettings(settings);
  const modules = new Map<string, readonly number[] | null>(); // module -> Linear weight shape, null: not a Linear
  for (const s of baseSpecs) {
    const dot = s.name.lastIndexOf('.');
    const module = s.name.slice(0, dot);
    const leaf = s.name.slice(dot + 1);
    const last = module.slice(module.lastIndexOf('.') + 1);
    if (leaf === 'weight') modules.set(module, s.shape.length === 2 && !EMBEDDINGS[modelType].includes(last) ? s.shape : null);
    else if (!modules.has(module)) modules.set(module, null);
  }
  const problems: string[] = [];
  for (const t of targetModules) {
    const hits = [...modules].filter(([m]) => matchesTarget(m, t));
    if (hits.length === 0) problems.push(`target '${t}' matches no module of the ${modelType} model`);
    const notLinear = hits.filter(([, shape]) => shape === null).map(([m]) => m);
    if (notLinear.length > 0) problems.push(`target '${t}' matches ${notLinear.slice(0, 3).join(', ')}${notLinear.length > 3 ? ', ...' : ''}, which is not an nn.Linear (LoRA adapts Linear layers only)`);
  }
  if (problems.length > 0) throw new LoraConfigError(`LoRA target_modules [${targetModules.join(', ')}]: ${problems.join('; ')}`);

  const specs: LoraParamSpec[] = [];
  for (const [module, shape] of modules) {
    if (shape === null || !targetModules.some((t) => matchesTarget(module, t))) continue;
    const [out, inFeatures] = shape as [number, number];
    const baseWeight = `${module}.weight`;
    specs.push({ name: peftName(module, 'A'), shape: [r, inFeatures], module, role: 'A', baseWeight, init: { kind: 'uniform', bound: 1 / Math.sqrt(inFeatures) } });
    specs.push({ name: peftName(module, 'B'), shape: [out, r], module, role: 'B', baseWeight, init: { kind: 'zeros' } });
  }
  return specs;
}

/** Elements of the adapter flat buffer. */
export function loraParamCount(specs: readonly LoraParamSpec[]): number {
  return specs.reduce((n, s) => n + numel(s.shape), 0);
}

/** The whole adapter flat buffer, freshly initialised. */
export function initLoraFlat(specs: readonly LoraParamSpec[], seed: number): Float32Array {
  return initLoraFlatRange(specs, seed, 0, loraParamCount(specs));
}

/**
 * Elements [begin, end) of the initialised adapter buffer (e.g. one ZeRO rank's slice), equal to
 * `initLoraFlat(...).subarray(begin, end)` bit for bit: adapter i draws from its own stream, element j
 * from word j of it (fillUniform: one word per element), so any range is produced on its own.
 */
export function initLoraFlatRange(specs: readonly LoraParamSpec[], seed: number, begin: number, end: number): Float32Array {
  const total = loraParamCount(specs);
  if (!(Number.isSafeInteger(begin) && Number.isSafeInteger(end) && 0 <= begin && begin <= end && end <= total)) {
    throw new RangeError(`LoRA init range [${begin}, ${end}) is not inside [0, ${total})`);
  }
  const out = new Float32Array(end - begin);
  let offset = 0;
  specs.forEach((s, index) => {
    const size = numel(s.shape);
    const from = Math.max(begin, offset) - offset;
    const to = Math.min(end, offset + size) - offset;
    if (from < to && s.init.kind === 'uniform') {
      const stream = rngStream(seed, RngDomain.init, LORA_INIT_KEY, index);
      stream.seek(from);
      stream.fillUniform(out.subarray(offset + from - begin, offset + to - begin), -s.init.bound, s.init.bound);
    } // zeros: already
    offset += size;
  });
  return out;
}

/**
 * The adapters of `specs` by module (A then B per module, as loraParamSpecs lists them), made from
 * the graph values `valueOf` gives for each spec.
 */
export function loraAdapters<S extends LoraParamSpec, V>(
  specs: readonly S[],
  settings: LoraSettings,
  valueOf: (spec: S) => V,
): Map<string, { readonly a: V; readonly b: V; readonly scale: number; readonly dropout: number }> {
  const out = new Map<string, { a: V; b: V; scale: number; dropout: number }>();
  for (let i = 0; i + 1 < specs.length; i += 2) {
    const a = specs[i]!;
    const b = specs[i + 1]!;
    if (a.role !== 'A' || b.role !== 'B' || a.module !== b.module) throw new LoraConfigError(`LoRA specs out of order at ${a.name}`);
    out.set(a.module, { a: valueOf(a), b: valueOf(b), scale: loraScale(settings), dropout: settings.dropout });
  }
  return out;
}
