import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { KpCoordError } from '../shared/errors.js';
import { initLoraFlatRange, loraParamSpecs, type LoraParamSpec, type LoraSettings } from '../shared/models/lora.js';
import type { ModelFamily } from '../shared/models/model-family.js';
import { modelFamily, resizedForData, PRESET_PREFIX, resolveModelSpec, type ModelSpec } from '../shared/models/model-spec.js';
import { neoxConfigJson, parseNeoXConfig } from '../shared/models/neox-config.js';
import { neoxParamSpecs } from '../shared/models/neox-params.js';
import { parseT5Config, t5ConfigJson } from '../shared/models/t5-config.js';
import { bartConfigJson, parseBartConfig } from '../shared/models/bart-config.js';
import { bartParamSpecs } from '../shared/models/bart-params.js';
import type { CheckpointManifest } from '../shared/checkpoint/checkpoint-manifest.js';
import type { TrainPlan } from '../shared/plan/train-plan.js';
import { FlatLayout } from '../shared/weights/flat-layout.js';
import { loadHfWeightRanges, loadHfWeights, saveBartModel, saveHfFolder, saveHfModel, type FlatPiece } from '../shared/weights/hf-checkpoint.js';
import { initFlatRange } from '../shared/weights/init.js';
import { resizeEmbeddings } from '../shared/weights/resize-embeddings.js';
import { writePeftAdapter } from '../shared/weights/peft-adapter.js';

// The model a worker trains, whatever its family ([Note: model family]): the trainable layout (the
// whole model, or LoRA's adapters), the frozen base under LoRA, where their first values come from
// (an HF folder, or a fresh init from the run's seed), and how the final model is written (an HF
// folder, or a PEFT adapter folder). ZeRO, checkpoints and the optimizer see only the trainable layout.

/** Buffers older GPT-NeoX checkpoints store beside the parameters (transformers ignores them on load). */
/** GPT-NeoX's input and output embedding tables (what resize_token_embeddings grows). */
const NEOX_EMBEDDING_TABLES = ['gpt_neox.embed_in.weight', 'embed_out.weight'];

const NEOX_CHECKPOINT_BUFFERS = /^gpt_neox\.layers\.\d+\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$/u;

/** A WorkerModel as plain data (it crosses to the engine thread, which loads the frozen base itself). */
export interface WorkerModelData {
  readonly source: string;
  readonly spec: ModelSpec;
  readonly weightsDir: string | null;
  readonly resizedFrom: number | null;
}

export class WorkerModel {
  readonly family: ModelFamily;
  readonly layout: FlatLayout;
  readonly frozenLayout: FlatLayout | null;

  private constructor(
    /** `preset:<name>` or the HF folder, as the plan names it (a PEFT adapter's base_model_name_or_path). */
    readonly source: string,
    readonly spec: ModelSpec,
    /** An HF folder holding the base weights, or null (a preset: fresh init). */
    readonly weightsDir: string | null,
    /** The vocabulary before added tokens grew it (resize_token_embeddings), or null. */
    private readonly resizedFrom: number | null,
  ) {
    this.family = modelFamily(spec);
    this.layout = FlatLayout.fromSpecs(this.family.paramSpecs());
    const frozen = this.family.frozenSpecs();
    this.frozenLayout = frozen.length > 0 ? FlatLayout.fromSpecs(frozen) : null;
  }

  static fromData(d: WorkerModelData): WorkerModel {
    return new WorkerModel(d.source, d.spec, d.weightsDir, d.resizedFrom);
  }

  get data(): WorkerModelData {
    return { source: this.source, spec: this.spec, weightsDir: this.weightsDir, resizedFrom: this.resizedFrom };
  }

  /** The model a checkpoint holds (its run's model, LoRA settings and trained vocabulary). */
  static fromCheckpoint(m: CheckpointManifest): WorkerModel {
    const base = resolveModelSpec(m.model);
    const grown = resizedForData(base, m.vocab_size ?? null);
    const lora = m.lora ? loraSettings(m.lora) : null;
    const weights = !m.model.startsWith(PRESET_PREFIX) && existsSync(join(m.model, 'config.json')) ? m.model : null;
    return new WorkerModel(m.model, { ...grown.spec, lora }, weights, grown.resizedFrom);
  }

  /** The config.json of the model as trained (vocabulary grown where the data added tokens). */
  configJson(): Record<string, unknown> {
    const raw = this.spec.configRaw;
    switch (this.spec.modelType) {
      case 't5': return t5ConfigJson(parseT5Config(raw));
      case 'gpt_neox': return neoxConfigJson(parseNeoXConfig(raw));
      case 'bart': return bartConfigJson(parseBartConfig(raw));
    }
  }

  /**
   * `resizeTo`: the vocabulary the data's added tokens resize the embeddings to (embeddingResize of
   * the cache; null: none), as HF resize_token_embeddings (shared/weights/resize-embeddings.ts).
   */
  static fromPlan(plan: TrainPlan, resizeTo: number | null): WorkerModel {
    const grown = resizedForData(resolveModelSpec(plan.model), resizeTo);
    let spec = grown.spec;
    const resizedFrom = grown.resizedFrom;
    if (plan.dropout_rate !== null) {
      spec = { ...spec, configRaw: { ...spec.configRaw, ...dropoutOverride(spec.modelType, plan.dropout_rate) } };
    }
    if (plan.lora) {
      spec = { ...spec, lora: loraSettings(plan.lora) };
    }
    const weights = !plan.model.startsWith(PRESET_PREFIX) && existsSync(join(plan.model, 'config.json')) ? plan.model : null;
    return new WorkerModel(plan.model, spec, weights, resizedFrom);
  }

  get lora(): LoraSettings | null {
    return this.spec.lora ?? null;
  }

  /** Elements [lo, hi) of freshly initialised trainable parameters (the same bits on any rank). */
  initRange(seed: number, lo: number, hi: number): Float32Array {
    if (this.lora) return initLoraFlatRange(this.adapterSpecs(), seed, lo, hi);
    return initFlatRange(this.family.paramSpecs(), this.layout, seed, lo, hi, this.onesValue());
  }

  /**
   * The trainable parameters from the HF folder (full fine-tuning), grown for added tokens where the
   * data adds them; or null (LoRA: adapters start fresh; a preset at its own vocabulary: plain init).
   */
  async loadTrainable(seed: number, flatLength?: number): Promise<Float32Array | null> {
    if (this.lora) return null;
    if (this.resizedFrom !== null) return this.resized(seed, flatLength);
    if (!this.weightsDir) return null;
    return this.loadHf(this.layout, flatLength);
  }

  /** The frozen base (LoRA): from the HF folder, or initialised from the seed as full training would. */
  async frozen(seed: number): Promise<Float32Array | null> {
    const layout = this.frozenLayout;
    if (!layout) return null;
    if (this.weightsDir) return this.loadHf(layout);
    if (this.resizedFrom !== null) return this.resized(seed);
    return initFlatRange(this.family.frozenSpecs(), layout, seed, 0, layout.totalSize, this.onesValue());
  }

  /**
   * Only the flat ranges `pieces` of the frozen base (ZeRO-3: this rank's chunks of its units), the
   * same values as `frozen` gives: read from the HF folder or initialised range by range, so the
   * whole base never passes through the rank. Added tokens are the exception: resizing needs the
   * embedding tables whole, so then the base passes through once, at setup.
   */
  async frozenInto(seed: number, pieces: readonly FlatPiece[]): Promise<void> {
    const layout = this.frozenLayout;
    if (!layout) throw new KpCoordError('frozenInto: the model has no frozen base');
    if (this.resizedFrom !== null) {
      const whole = await this.resized(seed);
      for (const c of pieces) c.dest.set(whole.subarray(c.lo, c.hi));
    } else if (this.weightsDir) {
      await loadHfWeightRanges(this.weightsDir, this.spec.modelType, layout, pieces);
    } else {
      for (const c of pieces) c.dest.set(initFlatRange(this.family.frozenSpecs(), layout, seed, c.lo, c.hi, this.onesValue()));
    }
  }

  /** The base at the vocabulary it was made with (a preset's init, or the folder's weights), its tables then resized. */
  private async resized(seed: number, flatLength?: number): Promise<Float32Array> {
    const before = parseNeoXConfig({ ...this.spec.configRaw, vocab_size: this.resizedFrom });
    const specs = neoxParamSpecs(before);
    const from = FlatLayout.fromSpecs(specs);
    const old = this.weightsDir ? await this.loadHfAt(from) : initFlatRange(specs, from, seed, 0, from.totalSize);
    const to = FlatLayout.fromSpecs(neoxParamSpecs(parseNeoXConfig(this.spec.configRaw)));
    const grown = resizeEmbeddings(old, from, to, NEOX_EMBEDDING_TABLES);
    if (flatLength === undefined || flatLength === grown.length) return grown;
    const padded = new Float32Array(flatLength);
    padded.set(grown);
    return padded;
  }

  /** Write the final model: an HF folder (full fine-tuning) or a PEFT adapter folder (LoRA). */
  async save(dir: string, trainable: Float32Array): Promise<void> {
    if (this.lora) {
      await writePeftAdapter(dir, {
        settings: this.lora,
        modelType: this.spec.modelType,
        baseModelNameOrPath: this.source,
        specs: this.adapterSpecs(),
        flat: trainable,
      });
      return;
    }
    if (this.spec.modelType === 't5') return saveHfModel(dir, parseT5Config(this.spec.configRaw), trainable);
    // BART: the final_logits_bias buffer (never trained) as the base folder holds it, zeros for a preset.
    if (this.spec.modelType === 'bart') return saveBartModel(dir, parseBartConfig(this.spec.configRaw), trainable, await this.frozen(0));
    await saveHfFolder(dir, neoxConfigJson(parseNeoXConfig(this.spec.configRaw)), this.layout, trainable.subarray(0, this.layout.totalSize));
  }

  private adapterSpecs(): LoraParamSpec[] {
    const base = this.spec.modelType === 't5' ? this.family.frozenSpecs() : this.spec.modelType === 'bart' ? bartParamSpecs(parseBartConfig(this.spec.configRaw)) : neoxParamSpecs(parseNeoXConfig(this.spec.configRaw));
    return loraParamSpecs(base, this.lora!, this.spec.modelType);
  }

  /** T5 fills its norms with initializer_factor (HF), GPT-NeoX with ones. */
  private onesValue(): number {
    return this.spec.modelType === 't5' ? parseT5Config(this.spec.configRaw).initializerFactor : 1;
  }

  private async loadHf(layout: FlatLayout, flatLength?: number): Promise<Float32Array> {
    if (this.resizedFrom !== null) return this.resized(0, flatLength);
    return this.loadHfAt(layout, flatLength);
  }

  private loadHfAt(layout: FlatLayout, flatLength?: number): Promise<Float32Array> {
    return loadHfWeights(this.weightsDir!, this.spec.modelType, layout, flatLength === undefined ? {} : { flatLength });
  }

}

/** The run's dropout_rate as the family's config keys. */
function dropoutOverride(modelType: ModelSpec['modelType'], rate: number): Record<string, number> {
  switch (modelType) {
    case 't5': return { dropout_rate: rate }; // T5's one rate
    case 'gpt_neox': return { attention_dropout: rate, hidden_dropout: rate }; // attention probabilities and hidden states: both
    case 'bart': return { dropout: rate }; // embeddings and sublayer outputs; attention/activation dropout stay the config's
  }
}

/** The plan's (or a checkpoint manifest's) LoRA record as the graphs' settings; use_rslora shows in its scaling. */
export function loraSettings(l: { readonly r: number; readonly lora_alpha: number; readonly lora_dropout: number; readonly target_modules: readonly string[]; readonly scaling: number }): LoraSettings {
  const rslora = l.lora_alpha / Math.sqrt(l.r);
  const useRslora = l.r !== 1 && Math.abs(l.scaling - rslora) <= 1e-12 * rslora;
  if (!useRslora && Math.abs(l.scaling - l.lora_alpha / l.r) > 1e-12 * l.scaling) throw new KpCoordError(`LoRA scaling ${l.scaling} is neither lora_alpha / r nor lora_alpha / sqrt(r)`);
  return { r: l.r, alpha: l.lora_alpha, dropout: l.lora_dropout, targetModules: [...l.target_modules], ...(useRslora ? { useRslora } : {}) };
}
