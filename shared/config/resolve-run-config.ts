import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { InputFileError } from '../errors.js';
import { MODEL_PRESETS } from '../models/model-spec.js';
import { BUILTIN_TOKENIZER } from '../tokenizer/load-tokenizer.js';
import type { CacheLayout, PrefixTokens } from '../data/cache-format.js';
import { layoutForModel, type ModelType } from '../data/data-cache.js';
import { applyOverrides, type AppliedOverride } from './config-overrides.js';
import { ConfigIssues, unknownKeyMessage, type FieldLocator } from './config-issues.js';
import { readConfigText, type ConfigText, type FieldPath } from './config-text.js';
import { mergeDeepSpeedFile, type IgnoredKey, type OurTrainingValues } from './deepspeed-config.js';
import { loraProblems, resolveLora, type ResolvedLora } from './lora-config.js';
import { readModelFacts } from './model-type.js';
import { HF_KEYS_NOT_USED, KEYS_FOR_LATER_ISSUES, MODEL_PRESET_PREFIX, RunConfigSchema, type RunConfig } from './run-config.js';
import { SHARDING_POLICY_BY_STAGE, STAGE3_KEYS, STAGE3_KEYS_ACTED_ON, ZERO_KEYS_ACTED_ON, ZeroOptimizationSchema, zeroIgnoreReason, type ShardingPolicyName, type Stage3Key, type ZeroOptimization } from './zero-config.js';

// Reading a run config: overrides -> each field checked -> checks across fields and against the
// file system -> the DeepSpeed file folded in -> every problem reported at once -> a frozen
// ResolvedRunConfig whose `config` holds every value (defaults, "auto" and DeepSpeed resolved,
// paths absolute) under its HF/DeepSpeed name, plus the values derived from it.

export type DeepReadonly<T> = T extends (infer U)[] ? readonly DeepReadonly<U>[] : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

type HfNotUsedKey = 'fp16' | 'bf16' | 'tf32' | 'do_train' | 'do_eval' | 'do_predict' | 'overwrite_output_dir' | 'logging_dir' | 'report_to' | 'disable_tqdm' | 'dataloader_num_workers' | 'dataloader_pin_memory' | 'remove_unused_columns';
type AutoZeroKey = 'reduce_bucket_size' | 'overlap_comm' | Stage3Key | (typeof STAGE3_KEYS)[Stage3Key]['alias'];

/**
 * zero_optimization with DeepSpeed's implicit defaults and HF's "auto" values filled in. The
 * stage-3 settings appear once, under DeepSpeed's field names (the stage3_ aliases fold into them).
 */
export type ResolvedZeroOptimization = Omit<ZeroOptimization, AutoZeroKey> & {
  reduce_bucket_size: number;
  overlap_comm: boolean;
} & Record<Stage3Key, number>;

/** The config's nulls (HF YAML's None) are dropped on resolution: absent means unset. */
type WithoutNull<T> = T extends (infer U)[] ? WithoutNull<U>[] : T extends object ? { [K in keyof T]: WithoutNull<Exclude<T[K], null>> } : Exclude<T, null>;

/** Every setting under its config name. Feeding it back to resolveRunConfig gives the same values. */
export type ResolvedConfigValues = WithoutNull<
  Omit<RunConfig, HfNotUsedKey | 'deepspeed' | 'evaluation_strategy' | 'eval_strategy' | 'metric_for_best_model' | 'greater_is_better' | 'zero_optimization'> & {
    eval_strategy: 'no' | 'steps' | 'epoch';
    metric_for_best_model: 'eval_loss';
    greater_is_better: boolean;
    zero_optimization: ResolvedZeroOptimization;
  }
>;

export type ModelSource = { readonly kind: 'preset'; readonly name: string } | { readonly kind: 'directory'; readonly path: string };

export type DataSource =
  | { readonly kind: 'cache'; readonly dir: string }
  | { readonly kind: 'files'; readonly trainFile: string; readonly evalFile: string | undefined; readonly rulesPreset: string };

export interface ResolvedRunConfig {
  readonly config: DeepReadonly<ResolvedConfigValues>;
  /** The config file, or what the caller named the config (e.g. "embedded default"). */
  readonly source: string;
  /** The DeepSpeed file folded in (absolute), if any. */
  readonly deepspeedFile: string | undefined;
  /** Workers in the run (`workers`). */
  readonly worldSize: number;
  /** Samples per optimizer step: per_device_train_batch_size x gradient_accumulation_steps x worldSize. */
  readonly globalBatchSize: number;
  /** What the ZeRO stage partitions (zero-config.ts SHARDING_POLICY_BY_STAGE). */
  readonly sharding: ShardingPolicyName;
  readonly model: ModelSource;
  /** HF model_type of the model (presets are t5). */
  readonly modelType: ModelType;
  readonly data: DataSource;
  /** The sample layout the model trains on (from its family) and, for causal data prepared from files, how the prefixes are tokenised. */
  readonly sequence: { readonly layout: CacheLayout; readonly prefixTokens: PrefixTokens };
  /** TrainPlan `lora`: the adapters, family defaults filled in; null: full fine-tuning. */
  readonly lora: ResolvedLora | null;
  /** TrainPlan `causal`: decoder-only training options; null for seq2seq (T5). */
  readonly causal: { readonly completion_only_loss: boolean } | null;
  /** Keys given but not acted on, with why: log them at start. */
  readonly ignored: readonly IgnoredKey[];
}

export interface ResolveOptions {
  /** Names the config in messages (its file). Default "run config". */
  readonly source?: string;
  /** `key=value` pairs (dotted keys, YAML values) applied over the config before validation. */
  readonly overrides?: readonly string[];
  /** Relative paths in the config are taken from here (default: the working directory, as HF does). */
  readonly baseDir?: string;
  /** Line of a field in the source file (loadRunConfig supplies it). */
  readonly lineOf?: ConfigText['lineOf'];
}

/** Read a .yaml/.yml/.json run config and resolve it (see resolveRunConfig). */
export function loadRunConfig(file: string, options: Omit<ResolveOptions, 'source' | 'lineOf'> = {}): ResolvedRunConfig {
  const text = readConfigText(file);
  return resolveRunConfig(text.value, { ...options, source: file, lineOf: text.lineOf });
}

/**
 * Validate and resolve a run config as written (a parsed YAML/JSON object). Throws one
 * InputFileError listing every bad field, with its line (or the --set that gave it).
 */
export function resolveRunConfig(input: unknown, options: ResolveOptions = {}): ResolvedRunConfig {
  const source = options.source ?? 'run config';
  const baseDir = options.baseDir ?? process.cwd();
  if (input !== null && input !== undefined && (typeof input !== 'object' || Array.isArray(input))) {
    throw new InputFileError(source, '', 'a run config must be a mapping of keys to values');
  }
  const issues = new ConfigIssues();
  const over = applyOverrides((input ?? {}) as Record<string, unknown>, options.overrides ?? []);
  for (const m of over.malformed) issues.add(() => `--set ${m.text}`, [], m.problem);
  const raw = over.raw;
  const locate = oursLocator(options.lineOf, over.applied);
  const oursAt = (path: FieldPath): string | undefined => (hasPath(raw, path) ? locate(path) || `set in ${source}` : undefined);

  // Each field on its own, so one bad field does not hide the checks of the others.
  const shape = RunConfigSchema.shape as Record<string, (typeof RunConfigSchema.shape)[keyof typeof RunConfigSchema.shape]>;
  const fields: Partial<Record<string, unknown>> = {};
  for (const [key, schema] of Object.entries(shape)) {
    const r = schema.safeParse(raw[key]);
    if (r.success) fields[key] = r.data;
    else issues.addZod(locate, r.error, raw[key], schema, [key]);
  }
  for (const key of Object.keys(raw)) if (!Object.hasOwn(shape, key)) issues.add(locate, [key], unknownKeyMessage(key, Object.keys(shape)));
  const c = fields as Partial<RunConfig>;

  checkLifecycle(c, raw, locate, issues);
  if (c.heartbeat_interval_ms !== undefined && c.heartbeat_timeout_ms !== undefined && c.heartbeat_timeout_ms < 2 * c.heartbeat_interval_ms) {
    issues.add(locate, ['heartbeat_timeout_ms'], `must be at least twice heartbeat_interval_ms (${c.heartbeat_interval_ms}) so one late beat is not a death`);
  }
  const paths = checkPaths(c, baseDir, locate, issues);
  checkFamilyKeys(c, paths.modelType, locate, issues);

  // The DeepSpeed file, folded into the raw config.
  let merged = raw;
  let deepspeedFile: string | undefined;
  const ignored: IgnoredKey[] = [];
  let zeroFrom = (key: string): string => locate(['zero_optimization', ...key.split('.')]) || source;
  if (typeof c.deepspeed === 'string') {
    deepspeedFile = resolve(baseDir, c.deepspeed);
    let ds: ConfigText | undefined;
    try {
      ds = readConfigText(deepspeedFile);
    } catch (err) {
      if (!(err instanceof InputFileError)) throw err;
      issues.add(locate, ['deepspeed'], err.message);
    }
    if (ds !== undefined) {
      const r = mergeDeepSpeedFile({ ds, raw, ours: trainingValues(c), oursAt, issues });
      merged = r.raw;
      ignored.push(...r.ignored);
      zeroFrom = (key) => r.zeroFrom(key) ?? source;
    }
  }
  const zero = ZeroOptimizationSchema.safeParse(merged.zero_optimization ?? {});
  if (zero.success) {
    // DeepSpeed takes either spelling of a stage-3 key; two different values would be a guess.
    for (const [key, { alias }] of Object.entries(STAGE3_KEYS)) {
      const a = (zero.data as Record<string, unknown>)[alias];
      const b = (zero.data as Record<string, unknown>)[key];
      if (a !== undefined && b !== undefined && a !== b) issues.add(() => zeroFrom(key), ['zero_optimization', key], `${alias} is ${JSON.stringify(a)} and its alias ${key} is ${JSON.stringify(b)}; give one`);
    }
    const threads = (merged as Record<string, unknown>).optimizer_threads;
    if (typeof threads === 'number' && threads > 1 && zero.data.stage !== 3) {
      issues.add(locate, ['optimizer_threads'], `${threads} threads need zero_optimization.stage 3 (the threads update the shard buffers in place as shared memory; below stage 3 onnxruntime reads the whole parameter buffer and refuses shared memory)`);
    }
  }

  issues.throwIfAny(source, 'invalid run config');

  const parsed = RunConfigSchema.parse(merged);
  const config = finalise(parsed, paths, baseDir);
  ignored.push(...ignoredKeys(merged, config, locate, zeroFrom, source));
  const layout = layoutForModel(paths.modelType);
  return deepFreeze({
    config,
    source,
    deepspeedFile,
    worldSize: config.workers,
    globalBatchSize: config.per_device_train_batch_size * config.gradient_accumulation_steps * config.workers,
    sharding: SHARDING_POLICY_BY_STAGE[config.zero_optimization.stage as 0 | 1 | 2 | 3],
    model: paths.model,
    modelType: paths.modelType,
    data: dataSource(config.data),
    sequence: { layout, prefixTokens: (typeof config.data === 'string' ? undefined : config.data.prefix_tokens) ?? 'text' },
    lora: parsed.lora ? resolveLora(parsed.lora, paths.modelType) : null,
    causal: layout === 'causal' ? { completion_only_loss: config.completion_only_loss } : null,
    ignored,
  });
}

function oursLocator(lineOf: ResolveOptions['lineOf'], applied: readonly AppliedOverride[]): FieldLocator {
  return (path) => {
    // The last override whose key is this field or holds it.
    for (let i = applied.length - 1; i >= 0; i--) {
      const o = applied[i]!;
      if (o.path.every((p, k) => String(path[k]) === p) && path.length >= o.path.length) return `--set ${o.text}`;
    }
    const line = lineOf?.(path);
    return line === undefined ? '' : `line ${line}`;
  };
}

function hasPath(root: unknown, path: FieldPath): boolean {
  let v = root;
  for (const p of path) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, p)) return false;
    v = (v as Record<string | number, unknown>)[p];
  }
  return v !== undefined && v !== null;
}

// HF TrainingArguments.__post_init__'s checks, and EarlyStoppingCallback's.
function checkLifecycle(c: Partial<RunConfig>, raw: Record<string, unknown>, locate: FieldLocator, issues: ConfigIssues): void {
  if (c.eval_strategy !== undefined && c.evaluation_strategy !== undefined && c.eval_strategy !== c.evaluation_strategy) {
    issues.add(locate, ['evaluation_strategy'], `"${c.evaluation_strategy}" disagrees with eval_strategy "${c.eval_strategy}" (the same setting under its old name); keep one`);
  }
  const evalStrategy = c.eval_strategy ?? c.evaluation_strategy ?? 'no';
  const evalKey = raw.eval_strategy === undefined && raw.evaluation_strategy !== undefined ? 'evaluation_strategy' : 'eval_strategy';
  if (c.load_best_model_at_end === true && c.save_strategy !== undefined && c.save_strategy !== 'best') {
    if (c.save_strategy !== evalStrategy) {
      issues.add(locate, ['load_best_model_at_end'], `needs save_strategy ("${c.save_strategy}") to match ${evalKey} ("${evalStrategy}"), so every evaluated model is saved`);
    } else if (evalStrategy === 'steps' && c.save_steps !== undefined && c.logging_steps !== undefined) {
      const evalSteps = c.eval_steps ?? c.logging_steps;
      const bothRatios = c.save_steps < 1 && evalSteps < 1;
      const bothSteps = c.save_steps >= 1 && evalSteps >= 1;
      if (!(bothRatios || bothSteps) || !isMultiple(c.save_steps, evalSteps)) {
        issues.add(locate, ['save_steps'], `with load_best_model_at_end, save_steps (${c.save_steps}) must be a multiple of eval_steps (${evalSteps}), both steps or both ratios`);
      }
    }
  }
  if (c.save_strategy === 'best' && evalStrategy === 'no') issues.add(locate, ['save_strategy'], `"best" needs evaluations; set ${evalKey} to "steps" or "epoch"`);
  if (c.early_stopping_patience !== undefined && c.early_stopping_patience !== null) {
    if (evalStrategy === 'no') issues.add(locate, ['early_stopping_patience'], `needs evaluations; set ${evalKey} to "steps" or "epoch"`);
    if (c.load_best_model_at_end === false) issues.add(locate, ['early_stopping_patience'], 'needs load_best_model_at_end: true (as HF EarlyStoppingCallback does), so the run ends on its best weights');
  }
}

function isMultiple(a: number, b: number): boolean {
  const q = a / b;
  return Math.abs(q - Math.round(q)) < 1e-9;
}

interface CheckedPaths {
  readonly model: ModelSource;
  readonly modelType: ModelType;
  /** The model's d_model: HF sizes the "auto" ZeRO buckets from it. */
  readonly dModel: number;
}

// Files named by the config must exist now, not an hour into a run.
function checkPaths(c: Partial<RunConfig>, baseDir: string, locate: FieldLocator, issues: ConfigIssues): CheckedPaths {
  const abs = (p: string): string => resolve(baseDir, p);
  const need = (path: FieldPath, file: string, kind: 'file' | 'directory', hint = ''): boolean => {
    let ok: boolean;
    try {
      const s = statSync(file);
      ok = kind === 'file' ? s.isFile() : s.isDirectory();
    } catch {
      ok = false;
    }
    if (!ok) issues.add(locate, path, `no such ${kind}: ${file}${hint}`);
    return ok;
  };
  let model: ModelSource = { kind: 'preset', name: 't5-small-bytes' };
  let modelType: ModelType = 't5';
  let dModel = 0;
  if (c.model !== undefined) {
    if (c.model.startsWith(MODEL_PRESET_PREFIX)) {
      const name = c.model.slice(MODEL_PRESET_PREFIX.length);
      model = { kind: 'preset', name };
      const preset = MODEL_PRESETS[name]!;
      modelType = preset.modelType;
      dModel = Number(preset.modelType === 'gpt_neox' ? preset.config.hidden_size : preset.config.d_model);
    } else {
      model = { kind: 'directory', path: abs(c.model) };
      if (need(['model'], model.path, 'directory', ' (an HF model folder: config.json + model.safetensors; or preset:<name>)')) {
        try {
          const facts = readModelFacts(model.path);
          modelType = facts.modelType;
          dModel = facts.hiddenSize;
        } catch (err) {
          if (!(err instanceof InputFileError)) throw err;
          issues.add(locate, ['model'], `not a model: ${err.message}`);
        }
      }
    }
  }
  if (typeof c.data === 'string') {
    const dir = abs(c.data);
    if (need(['data'], dir, 'directory')) need(['data'], join(dir, 'manifest.json'), 'file', '; make a cache with `kp-coord data prepare`, or give data: {train_file: ...}');
  } else if (c.data !== undefined) {
    need(['data', 'train_file'], abs(c.data.train_file), 'file');
    if (c.data.eval_file) need(['data', 'eval_file'], abs(c.data.eval_file), 'file');
  }
  if (c.tokenizer !== undefined && c.tokenizer !== BUILTIN_TOKENIZER) {
    const t = abs(c.tokenizer);
    let exists = true;
    try {
      statSync(t);
    } catch {
      exists = false;
    }
    if (!exists) issues.add(locate, ['tokenizer'], `no such tokenizer.json or folder: ${t} (or use "${BUILTIN_TOKENIZER}")`);
  }
  if (c.nats?.credentials_file) need(['nats', 'credentials_file'], abs(c.nats.credentials_file), 'file');
  if (c.output_dir !== undefined) {
    try {
      if (!statSync(abs(c.output_dir)).isDirectory()) issues.add(locate, ['output_dir'], `${abs(c.output_dir)} exists and is not a folder`);
    } catch {
      // Absent is fine: the run creates it.
    }
  }
  return { model, modelType, dModel };
}

// Keys whose meaning depends on the model family: LoRA modules and task type, causal-only options.
function checkFamilyKeys(c: Partial<RunConfig>, modelType: ModelType, locate: FieldLocator, issues: ConfigIssues): void {
  if (c.lora) for (const p of loraProblems(c.lora, modelType)) issues.add(locate, ['lora', p.field], p.message);
  if (layoutForModel(modelType) === 'causal') return;
  if (c.completion_only_loss === true) issues.add(locate, ['completion_only_loss'], `is for decoder-only models; ${modelType} scores only its labels anyway`);
  if (c.data !== undefined && typeof c.data !== 'string' && c.data.prefix_tokens === 'added') {
    issues.add(locate, ['data', 'prefix_tokens'], `"added" is for decoder-only models (the causal layout); ${modelType} keeps its input prefix as text`);
  }
}

function trainingValues(c: Partial<RunConfig>): OurTrainingValues | undefined {
  const keys = ['per_device_train_batch_size', 'gradient_accumulation_steps', 'max_grad_norm', 'learning_rate', 'adam_beta1', 'adam_beta2', 'adam_epsilon', 'weight_decay', 'lr_scheduler_type', 'warmup_steps', 'warmup_ratio', 'max_steps', 'workers'] as const;
  if (keys.some((k) => c[k] === undefined)) return undefined;
  return c as OurTrainingValues;
}

function finalise(parsed: RunConfig, paths: CheckedPaths, baseDir: string): ResolvedConfigValues {
  const abs = (p: string): string => resolve(baseDir, p);
  const out: Record<string, unknown> = { ...parsed };
  for (const key of [...Object.keys(HF_KEYS_NOT_USED), 'deepspeed', 'evaluation_strategy']) delete out[key];
  Object.assign(out, finaliseLifecycle(parsed));
  out.output_dir = abs(parsed.output_dir);
  if (paths.model.kind === 'directory') out.model = paths.model.path;
  out.data = typeof parsed.data === 'string' ? abs(parsed.data) : { ...parsed.data, train_file: abs(parsed.data.train_file), ...(parsed.data.eval_file ? { eval_file: abs(parsed.data.eval_file) } : {}) };
  if (parsed.tokenizer !== BUILTIN_TOKENIZER) out.tokenizer = abs(parsed.tokenizer);
  if (parsed.nats?.credentials_file) out.nats = { ...parsed.nats, credentials_file: abs(parsed.nats.credentials_file) };
  out.zero_optimization = finaliseZero(parsed.zero_optimization, paths.dModel);
  if (parsed.lora) out.lora = { ...parsed.lora, target_modules: resolveLora(parsed.lora, paths.modelType).target_modules };
  return withoutNulls(out) as ResolvedConfigValues;
}

/** HF's derived lifecycle values: eval_strategy under its current name, eval_steps, the metric. */
function finaliseLifecycle(c: RunConfig): Pick<ResolvedConfigValues, 'eval_strategy' | 'eval_steps' | 'metric_for_best_model' | 'greater_is_better'> {
  const evalStrategy = c.eval_strategy ?? c.evaluation_strategy ?? 'no';
  return {
    eval_strategy: evalStrategy,
    eval_steps: evalStrategy === 'steps' ? (c.eval_steps ?? c.logging_steps) : (c.eval_steps ?? undefined),
    metric_for_best_model: 'eval_loss',
    // HF: greater is better unless the metric is a loss.
    greater_is_better: c.greater_is_better ?? false,
  };
}

// HF fills "auto" bucket sizes from the hidden size (HfDeepSpeedConfig.trainer_config_finalize).
function finaliseZero(z: ZeroOptimization, dModel: number): ResolvedZeroOptimization {
  const fill = (v: number | 'auto' | undefined, auto: number): number | undefined => (v === 'auto' ? auto : v);
  const out: Record<string, unknown> = {
    ...z,
    reduce_bucket_size: fill(z.reduce_bucket_size, dModel * dModel),
    // DeepSpeed overlaps communication by default at stage 3 only.
    overlap_comm: z.overlap_comm ?? z.stage === 3,
  };
  for (const [key, spec] of Object.entries(STAGE3_KEYS)) {
    const given = (z as Record<string, unknown>)[spec.alias] ?? (z as Record<string, unknown>)[key];
    delete out[spec.alias];
    // "auto" where HF fills none (max_live_parameters, max_reuse_distance) is DeepSpeed's default.
    out[key] = given === undefined || (given === 'auto' && !spec.auto) ? spec.default : given === 'auto' ? spec.auto!(dModel) : given;
  }
  for (const [k, v] of Object.entries(out)) if (v === undefined) delete out[k];
  return out as ResolvedZeroOptimization;
}

// What a config sets that the run does not act on: HF keys without effect here, lifecycle keys set
// away from their defaults before the lifecycle exists, and DeepSpeed ZeRO tuning keys.
function ignoredKeys(merged: Record<string, unknown>, config: ResolvedConfigValues, locate: FieldLocator, zeroFrom: (key: string) => string, source: string): IgnoredKey[] {
  const out: IgnoredKey[] = [];
  const from = (path: FieldPath): string => locate(path) || source;
  for (const [key, reason] of Object.entries(HF_KEYS_NOT_USED)) if (merged[key] !== undefined && merged[key] !== null) out.push({ key, from: from([key]), reason });
  const baseline = { ...RunConfigSchema.parse({}), ...finaliseLifecycle(RunConfigSchema.parse({})) } as Record<string, unknown>;
  const resolved = config as Record<string, unknown>;
  for (const [key, reason] of Object.entries(KEYS_FOR_LATER_ISSUES)) {
    if (key === 'evaluation_strategy') continue; // reported under eval_strategy
    if (!isDeepStrictEqual(resolved[key], baseline[key])) out.push({ key, from: from([key === 'eval_strategy' && merged.eval_strategy === undefined ? 'evaluation_strategy' : key]), reason });
  }
  const zero = merged.zero_optimization;
  if (zero !== null && typeof zero === 'object') {
    const stage = config.zero_optimization.stage;
    for (const [key, value] of Object.entries(zero)) {
      const subkeys = value !== null && typeof value === 'object' && !Array.isArray(value) ? Object.keys(value).map((s) => `${key}.${s}`) : [key];
      for (const k of subkeys) {
        // offload_param.device gets its own stage-3 message below.
        if (ZERO_KEYS_ACTED_ON.includes(k) || k === 'offload_param.device' || (stage === 3 && STAGE3_KEYS_ACTED_ON.includes(k))) continue;
        out.push({ key: `zero_optimization.${k}`, from: zeroFrom(k), reason: zeroIgnoreReason(k, stage) });
      }
    }
    if (config.zero_optimization.offload_param.device !== 'none' && stage < 3) {
      out.push({ key: 'zero_optimization.offload_param.device', from: zeroFrom('offload_param.device'), reason: `parameter offload applies at stage 3 only (as in DeepSpeed); this run uses stage ${stage}` });
    }
  }
  return out;
}

function dataSource(data: ResolvedConfigValues['data']): DataSource {
  if (typeof data === 'string') return { kind: 'cache', dir: data };
  return { kind: 'files', trainFile: data.train_file, evalFile: data.eval_file ?? undefined, rulesPreset: data.preset };
}

function withoutNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutNulls);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== null && x !== undefined) out[k] = withoutNulls(x);
  return out;
}

function deepFreeze<T>(v: T): DeepReadonly<T> {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v as DeepReadonly<T>;
}
