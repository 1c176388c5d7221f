import { statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { InputFileError, WeightsMismatchError } from '../errors.js';
import { bartConfigJson, readBartConfig, type BartConfig } from '../models/bart-config.js';
import { BART_LOGITS_BIAS, BART_SHARED, bartCheckpointSpecs, bartTiedAliases } from '../models/bart-params.js';
import { NEOX_CHECKPOINT_BUFFER } from '../models/neox-params.js';
import { T5_PRESETS } from '../models/presets.js';
import { parseT5Config, readT5Config, t5ConfigJson, type T5Config } from '../models/t5-config.js';
import { t5ParamSpecs, tiedAliases } from '../models/t5-params.js';
import { writeBytesAtomically } from './atomic-file.js';
import { CheckpointTensors } from './checkpoint-tensors.js';
import { FlatLayout } from './flat-layout.js';
import { FLOAT_DTYPES, writeSafetensors } from './safetensors.js';
import { SAFE_WEIGHTS_NAME } from './sharded-index.js';

// A Hugging Face model directory <-> (T5Config, FlatLayout, flat Float32Array).
// Loading is as strict as `from_pretrained` should be for training: every parameter must be present
// with the exact shape, and nothing unknown may be left over; all problems are reported at once.

export const CONFIG_NAME = 'config.json';

/**
 * Tensors transformers itself ignores when loading T5 (`_keys_to_ignore_on_load_unexpected`): the
 * original T5 checkpoints carry a relative-attention bias for the first decoder block's cross attention
 * that the model never uses.
 */
const IGNORED_UNEXPECTED: readonly string[] = ['decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight'];

const SHARED = 'shared.weight';
const LIST_LIMIT = 12;

export interface LoadedModel {
  readonly config: T5Config;
  readonly layout: FlatLayout;
  readonly flat: Float32Array;
}

export interface LoadOptions {
  /** Length of the returned flat buffer (>= layout.totalSize; the tail stays zero), e.g. ZeRO padding. */
  readonly flatLength?: number;
}

/** Read config.json and the safetensors weights of `dir` into one flat buffer. */
export async function loadHfModel(dir: string, options: LoadOptions = {}): Promise<LoadedModel> {
  const config = readT5Config(join(dir, CONFIG_NAME));
  const layout = FlatLayout.fromSpecs(t5ParamSpecs(config));
  const flat = await loadHfParams(dir, layout, { ...options, ...t5Matching(config) });
  return Object.freeze({ config, layout, flat });
}

/** How a T5 folder is matched: the shared embedding under any tied alias, the unused cross-attention bias skipped. */
function t5Matching(config: T5Config): ParamsLoadOptions {
  return { tied: { name: SHARED, aliases: tiedAliases(config) }, ignoredUnexpected: IGNORED_UNEXPECTED, model: 'the T5 config' };
}

/** How a GPT-NeoX folder is matched: the buffers older checkpoints store beside the parameters skipped. */
const NEOX_MATCHING: ParamsLoadOptions = { ignoredUnexpected: [NEOX_CHECKPOINT_BUFFER], model: 'the GPT-NeoX config' };

/**
 * The weights of an HF folder of either family into `layout`, the folder's own model: T5 with its
 * tied-embedding aliases, GPT-NeoX skipping the buffers older checkpoints store beside parameters.
 */
export async function loadHfWeights(dir: string, modelType: 't5' | 'gpt_neox' | 'bart', layout: FlatLayout, options: LoadOptions = {}): Promise<Float32Array> {
  if (modelType === 't5') return (await loadHfModel(dir, options)).flat;
  if (modelType === 'bart') return loadBartWeights(dir, layout, options);
  return loadHfParams(dir, layout, { ...options, ...NEOX_MATCHING });
}

/**
 * BART: the folder must hold exactly BartForConditionalGeneration's tensors (model.shared under its
 * own name or a tied alias: model.encoder/decoder.embed_tokens, lm_head when tied; tied copies must
 * hold the same bits); `final_logits_bias` may be absent (transformers' _keys_to_ignore_on_load_missing:
 * zeros then). `layout` may be any selection of those tensors (the trainable parameters, the frozen
 * buffer, or base + buffer under LoRA): the whole folder is checked, then the layout's tensors copied.
 */
async function loadBartWeights(dir: string, layout: FlatLayout, options: LoadOptions): Promise<Float32Array> {
  const config = readBartConfig(join(dir, CONFIG_NAME));
  const full = FlatLayout.fromSpecs(bartCheckpointSpecs(config));
  const all = await loadHfParams(dir, full, {
    tied: { name: BART_SHARED, aliases: bartTiedAliases(config) }, optional: [BART_LOGITS_BIAS], model: 'the BART config',
  });
  const flatLength = options.flatLength ?? layout.totalSize;
  if (flatLength < layout.totalSize) throw new RangeError(`flatLength ${flatLength} is below the layout size ${layout.totalSize}`);
  const out = new Float32Array(flatLength);
  for (const p of layout.params) {
    if (!full.has(p.name) || full.get(p.name).shape.join(',') !== p.shape.join(',')) {
      throw new WeightsMismatchError(`${dir}: ${p.name} [${p.shape.join(', ')}] is not a tensor of the folder's BART config`);
    }
    layout.view(out, p.name).set(full.view(all, p.name));
  }
  return out;
}

/** A piece of a flat buffer to fill: the flat range [lo, hi) into `dest` (hi - lo elements). */
export interface FlatPiece {
  readonly lo: number;
  readonly hi: number;
  readonly dest: Float32Array;
}

/**
 * Only the flat ranges `pieces` of `layout` from an HF folder of either family (ZeRO-3 setup: a
 * rank's chunks of a frozen base, so the whole model never passes through the rank): the folder is
 * matched as strictly as loadHfWeights matches it, then each parameter a piece touches is read
 * once, straight into the piece when it lies inside one, else through one tensor of scratch.
 */
export async function loadHfWeightRanges(dir: string, modelType: 't5' | 'gpt_neox' | 'bart', layout: FlatLayout, pieces: readonly FlatPiece[]): Promise<void> {
  if (modelType === 'bart') {
    // BART's folder is checked whole (tied aliases, the optional final_logits_bias) by loadBartWeights;
    // its frozen layouts are at most the model itself (124 M parameters for kobart-news).
    const whole = await loadBartWeights(dir, layout, {});
    for (const c of pieces) c.dest.set(whole.subarray(c.lo, c.hi));
    return;
  }
  const options = modelType === 't5' ? t5Matching(readT5Config(join(dir, CONFIG_NAME))) : NEOX_MATCHING;
  for (const piece of pieces) {
    if (!(piece.lo <= piece.hi && piece.hi <= layout.totalSize && piece.dest.length === piece.hi - piece.lo)) throw new RangeError(`piece [${piece.lo}, ${piece.hi}) with ${piece.dest.length} elements does not fit the layout (${layout.totalSize})`);
  }
  const tensors = await CheckpointTensors.open(dir);
  try {
    const plan = matchTensors(layout, tensors, options);
    for (const p of layout.params) {
      const touching = pieces.filter((c) => c.lo < p.offset + p.size && c.hi > p.offset);
      if (touching.length === 0) continue;
      const inside = touching.length === 1 && touching[0]!.lo <= p.offset && p.offset + p.size <= touching[0]!.hi ? touching[0]! : null;
      const values = inside ? inside.dest.subarray(p.offset - inside.lo, p.offset - inside.lo + p.size) : new Float32Array(p.size);
      await tensors.readInto(plan.sourceOf.get(p.name)!, values);
      if (p.name === options.tied?.name) await checkTiedCopies(tensors, plan, options.tied.name, values);
      if (inside) continue;
      for (const c of touching) {
        const lo = Math.max(c.lo, p.offset);
        const hi = Math.min(c.hi, p.offset + p.size);
        c.dest.set(values.subarray(lo - p.offset, hi - p.offset), lo - c.lo);
      }
    }
  } finally {
    await tensors.close();
  }
}

export interface ParamsLoadOptions extends LoadOptions {
  /** A parameter that checkpoints may store under other names too (T5's shared embedding); extra copies must hold the same bits. */
  readonly tied?: { readonly name: string; readonly aliases: readonly string[] };
  /** Stored tensors that are not parameters and are skipped (transformers' `_keys_to_ignore_on_load_unexpected`). */
  readonly ignoredUnexpected?: readonly (string | RegExp)[];
  /** What the layout is, for errors ("the T5 config"). */
  readonly model: string;
  /** Parameters a checkpoint may lack (left zero): transformers' `_keys_to_ignore_on_load_missing` (BART's final_logits_bias). */
  readonly optional?: readonly string[];
}

/** The parameters of `layout` from the safetensors weights of `dir` (any model family), strictly matched. */
export async function loadHfParams(dir: string, layout: FlatLayout, options: ParamsLoadOptions): Promise<Float32Array> {
  const flatLength = options.flatLength ?? layout.totalSize;
  if (flatLength < layout.totalSize) throw new RangeError(`flatLength ${flatLength} is below the layout size ${layout.totalSize}`);
  const tensors = await CheckpointTensors.open(dir);
  try {
    const plan = matchTensors(layout, tensors, options);
    const flat = new Float32Array(flatLength);
    for (const p of layout.params) {
      const source = plan.sourceOf.get(p.name);
      if (source !== undefined) await tensors.readInto(source, layout.view(flat, p.name));
    }
    if (options.tied) await checkTiedCopies(tensors, plan, options.tied.name, layout.view(flat, options.tied.name));
    return flat;
  } finally {
    await tensors.close();
  }
}

interface TensorPlan {
  /** Parameter name -> checkpoint tensor that supplies it. */
  readonly sourceOf: ReadonlyMap<string, string>;
  /** Further stored copies of the tied parameter, to be checked against the one loaded. */
  readonly extraAliases: readonly string[];
}

function matchTensors(layout: FlatLayout, tensors: CheckpointTensors, options: ParamsLoadOptions): TensorPlan {
  const tiedName = options.tied?.name;
  const aliases = options.tied?.aliases ?? [];
  const ignored = (n: string) => (options.ignoredUnexpected ?? []).some((i) => (typeof i === 'string' ? i === n : i.test(n)));
  const sourceOf = new Map<string, string>();
  const missing: string[] = [];
  const badShape: string[] = [];
  const badDtype: string[] = [];
  const check = (stored: string, shape: readonly number[]): void => {
    const { info } = tensors.get(stored)!;
    if (info.shape.join(',') !== shape.join(',')) badShape.push(`${stored}: expected [${shape.join(', ')}], got [${info.shape.join(', ')}]`);
    if (!FLOAT_DTYPES.includes(info.dtype)) badDtype.push(`${stored}: ${info.dtype}`);
  };

  for (const p of layout.params) {
    const stored = tensors.get(p.name) ? p.name : p.name === tiedName ? aliases.find((a) => tensors.get(a)) : undefined;
    if (stored === undefined) {
      if (options.optional?.includes(p.name)) continue;
      missing.push(p.name === tiedName ? `${tiedName} (or a tied alias: ${aliases.join(', ')})` : p.name);
      continue;
    }
    sourceOf.set(p.name, stored);
    check(stored, p.shape);
  }
  const extraAliases = tiedName ? aliases.filter((a) => tensors.get(a) && a !== sourceOf.get(tiedName)) : [];
  for (const a of extraAliases) check(a, layout.get(tiedName!).shape);
  const unexpected = tensors.names().filter((n) => !layout.has(n) && !aliases.includes(n) && !ignored(n));

  if (missing.length + unexpected.length + badShape.length + badDtype.length > 0) {
    const parts = [
      listed('missing', missing),
      listed('unexpected', unexpected),
      listed('shape mismatches', badShape),
      listed('not float tensors', badDtype),
    ].filter((s) => s !== '');
    throw new WeightsMismatchError(`${tensors.source}: weights do not match ${options.model}: ${parts.join('; ')}`);
  }
  return { sourceOf, extraAliases };
}

/** A checkpoint may hold several copies of a tied parameter; the model can only hold one. */
async function checkTiedCopies(tensors: CheckpointTensors, plan: TensorPlan, name: string, tied: Float32Array): Promise<void> {
  if (plan.extraAliases.length === 0) return;
  const scratch = new Float32Array(tied.length);
  for (const alias of plan.extraAliases) {
    await tensors.readInto(alias, scratch);
    if (!sameBits(scratch, tied)) throw new WeightsMismatchError(`${tensors.source}: '${alias}' is tied to '${name}' but holds different values`);
  }
}

function listed(what: string, items: readonly string[]): string {
  if (items.length === 0) return '';
  const shown = items.slice(0, LIST_LIMIT).join(', ');
  return `${items.length} ${what}: ${shown}${items.length > LIST_LIMIT ? `, ... (${items.length - LIST_LIMIT} more)` : ''}`;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/**
 * Write `dir/config.json` and `dir/model.safetensors` (F32, HF names, `format: pt` metadata) so that
 * `T5ForConditionalGeneration.from_pretrained(dir)` loads it. Tied copies are not written (transformers
 * re-ties them on load). Each file is replaced atomically; the weights go first, the config last.
 */
export async function saveHfModel(dir: string, config: T5Config, flat: Float32Array): Promise<void> {
  await saveHfFolder(dir, t5ConfigJson(config), FlatLayout.fromSpecs(t5ParamSpecs(config)), flat);
}

/**
 * Write `dir/model.safetensors` (F32, the layout's names, `format: pt`) and then `dir/config.json`
 * (`configJson` with torch_dtype float32), each atomically: an HF folder of any family.
 */
export async function saveHfFolder(dir: string, configJson: Record<string, unknown>, layout: FlatLayout, flat: Float32Array): Promise<void> {
  layout.checkLength(flat);
  await mkdir(dir, { recursive: true });
  await writeSafetensors(
    join(dir, SAFE_WEIGHTS_NAME),
    layout.params.map((p) => ({ name: p.name, dtype: 'F32' as const, shape: p.shape, data: layout.view(flat, p.name) })),
    { format: 'pt' },
  );
  await writeBytesAtomically(join(dir, CONFIG_NAME), `${JSON.stringify({ ...configJson, torch_dtype: 'float32' }, null, 2)}\n`);
}

/**
 * Write an HF BartForConditionalGeneration folder: `trainable` in bartParamSpecs' layout (model.shared
 * once, no tied copies: transformers re-ties embed_tokens and lm_head on load) and the
 * final_logits_bias buffer (`logitsBias` [1, vocab], zeros when null), under exactly HF's names.
 */
export async function saveBartModel(dir: string, config: BartConfig, trainable: Float32Array, logitsBias: Float32Array | null): Promise<void> {
  const full = FlatLayout.fromSpecs(bartCheckpointSpecs(config));
  const flat = new Float32Array(full.totalSize);
  const bias = full.get(BART_LOGITS_BIAS);
  const params = trainable.subarray(0, bias.offset);
  if (params.length !== bias.offset || full.params.at(-1)!.name !== BART_LOGITS_BIAS) throw new RangeError(`BART weights: ${trainable.length} values for ${bias.offset} parameters`);
  flat.set(params);
  if (logitsBias) {
    if (logitsBias.length !== bias.size) throw new RangeError(`final_logits_bias: ${logitsBias.length} values for [1, ${config.vocabSize}]`);
    flat.set(logitsBias, bias.offset);
  }
  await saveHfFolder(dir, bartConfigJson(config), full, flat);
}

/**
 * The T5Config named by `spec`: `preset:<name>` (see shared/models/presets.ts), a model directory
 * (its config.json), or a config.json file.
 */
export function resolveModelConfig(spec: string): T5Config {
  if (spec.startsWith('preset:')) {
    const name = spec.slice('preset:'.length);
    const preset = Object.hasOwn(T5_PRESETS, name) ? T5_PRESETS[name] : undefined;
    if (!preset) throw new InputFileError(spec, '', `unknown preset '${name}' (known: ${Object.keys(T5_PRESETS).join(', ')})`);
    return parseT5Config(preset, spec);
  }
  let isDirectory: boolean;
  try {
    isDirectory = statSync(spec).isDirectory();
  } catch (cause) {
    throw new InputFileError(spec, '', 'no such model directory or config file (or use preset:<name>)', { cause });
  }
  return readT5Config(isDirectory ? join(spec, CONFIG_NAME) : spec);
}
