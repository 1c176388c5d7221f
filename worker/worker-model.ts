import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { KpCoordError } from '../shared/errors.js';
import { initLoraFlatRange, loraParamSpecs, type LoraParamSpec, type LoraSettings } from '../shared/models/lora.js';
import type { ModelFamily } from '../shared/models/model-family.js';
import { modelFamily, PRESET_PREFIX, resolveModelSpec, type ModelSpec } from '../shared/models/model-spec.js';
import { neoxConfigJson, parseNeoXConfig } from '../shared/models/neox-config.js';
import { neoxParamSpecs } from '../shared/models/neox-params.js';
import { parseT5Config } from '../shared/models/t5-config.js';
import type { TrainPlan } from '../shared/plan/train-plan.js';
import { FlatLayout } from '../shared/weights/flat-layout.js';
import { loadHfModel, loadHfParams, saveHfFolder, saveHfModel } from '../shared/weights/hf-checkpoint.js';
import { initFlatRange } from '../shared/weights/init.js';
import { writePeftAdapter } from '../shared/weights/peft-adapter.js';

// The model a worker trains, whatever its family ([Note: model family]): the trainable layout (the
// whole model, or LoRA's adapters), the frozen base under LoRA, where their first values come from
// (an HF folder, or a fresh init from the run's seed), and how the final model is written (an HF
// folder, or a PEFT adapter folder). ZeRO, checkpoints and the optimizer see only the trainable layout.

/** Buffers older GPT-NeoX checkpoints store beside the parameters (transformers ignores them on load). */
const NEOX_CHECKPOINT_BUFFERS = /^gpt_neox\.layers\.\d+\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$/u;

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
  ) {
    this.family = modelFamily(spec);
    this.layout = FlatLayout.fromSpecs(this.family.paramSpecs());
    const frozen = this.family.frozenSpecs();
    this.frozenLayout = frozen.length > 0 ? FlatLayout.fromSpecs(frozen) : null;
  }

  static fromPlan(plan: TrainPlan): WorkerModel {
    let spec = resolveModelSpec(plan.model);
    if (plan.dropout_rate !== null) {
      // T5's one rate; GPT-NeoX has two (attention probabilities, hidden states): the override sets both.
      const override = spec.modelType === 't5' ? { dropout_rate: plan.dropout_rate } : { attention_dropout: plan.dropout_rate, hidden_dropout: plan.dropout_rate };
      spec = { ...spec, configRaw: { ...spec.configRaw, ...override } };
    }
    if (plan.lora) {
      const lora: LoraSettings = { r: plan.lora.r, alpha: plan.lora.lora_alpha, dropout: plan.lora.lora_dropout, targetModules: plan.lora.target_modules };
      if (Math.abs(plan.lora.scaling - lora.alpha / lora.r) > 1e-12 * plan.lora.scaling) throw new KpCoordError('use_rslora (scaling lora_alpha / sqrt(r)) is not built into the graphs yet');
      spec = { ...spec, lora };
    }
    const weights = !plan.model.startsWith(PRESET_PREFIX) && existsSync(join(plan.model, 'config.json')) ? plan.model : null;
    return new WorkerModel(plan.model, spec, weights);
  }

  get lora(): LoraSettings | null {
    return this.spec.lora ?? null;
  }

  /** Elements [lo, hi) of freshly initialised trainable parameters (the same bits on any rank). */
  initRange(seed: number, lo: number, hi: number): Float32Array {
    if (this.lora) return initLoraFlatRange(this.adapterSpecs(), seed, lo, hi);
    return initFlatRange(this.family.paramSpecs(), this.layout, seed, lo, hi, this.onesValue());
  }

  /** The trainable parameters from the HF folder (full fine-tuning), or null (LoRA: adapters start fresh; a preset). */
  async loadTrainable(flatLength?: number): Promise<Float32Array | null> {
    if (!this.weightsDir || this.lora) return null;
    return this.loadHf(this.layout, flatLength);
  }

  /** The frozen base (LoRA): from the HF folder, or initialised from the seed as full training would. */
  async frozen(seed: number): Promise<Float32Array | null> {
    const layout = this.frozenLayout;
    if (!layout) return null;
    if (this.weightsDir) return this.loadHf(layout);
    return initFlatRange(this.family.frozenSpecs(), layout, seed, 0, layout.totalSize, this.onesValue());
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
    await saveHfFolder(dir, neoxConfigJson(parseNeoXConfig(this.spec.configRaw)), this.layout, trainable.subarray(0, this.layout.totalSize));
  }

  private adapterSpecs(): LoraParamSpec[] {
    const base = this.spec.modelType === 't5' ? this.family.frozenSpecs() : neoxParamSpecs(parseNeoXConfig(this.spec.configRaw));
    return loraParamSpecs(base, this.lora!, this.spec.modelType);
  }

  /** T5 fills its norms with initializer_factor (HF), GPT-NeoX with ones. */
  private onesValue(): number {
    return this.spec.modelType === 't5' ? parseT5Config(this.spec.configRaw).initializerFactor : 1;
  }

  private async loadHf(layout: FlatLayout, flatLength?: number): Promise<Float32Array> {
    const dir = this.weightsDir!;
    if (this.spec.modelType === 't5') {
      const whole = await loadHfModel(dir, flatLength === undefined ? {} : { flatLength });
      return whole.flat;
    }
    return loadHfParams(dir, layout, { ...(flatLength === undefined ? {} : { flatLength }), ignoredUnexpected: [NEOX_CHECKPOINT_BUFFERS], model: 'the GPT-NeoX config' });
  }
}
