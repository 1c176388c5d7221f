import { GraphBuildError } from '../errors.js';
import type { Value } from '../onnx/graph.js';
import type { BartConfig } from './bart-config.js';
import type { LayerAdapters } from './bart-layers.js';
import { bartParamSpecs, type BartStack } from './bart-params.js';
import { loraParamSpecs, loraScale, PEFT_PREFIX, type LoraParamSpec, type LoraSettings } from './lora.js';

// LoRA on BART ([Note: LoRA]): PEFT's adapters on the targeted nn.Linear modules of the layers
// (default q_proj and v_proj, PEFT's mapping for bart). Only Linear layers inside encoder/decoder
// layers can be adapted: the block engine runs every layer of a stack with one graph, so every
// layer of a stack must adapt the same modules (always true for PEFT's name-suffix targets).

/** The adapter parameters (PEFT names, flat order), refusing targets outside the layers. */
export function bartLoraSpecs(config: BartConfig, settings: LoraSettings): LoraParamSpec[] {
  const specs = loraParamSpecs(bartParamSpecs(config), settings, 'bart');
  const outside = [...new Set(specs.filter((s) => !/^model\.(encoder|decoder)\.layers\.\d+\./u.test(s.module)).map((s) => s.module))];
  if (outside.length > 0) throw new GraphBuildError(`BART: LoRA on ${outside.join(', ')} is not supported (only Linear layers inside encoder/decoder layers)`);
  return specs;
}

/** The adapters of one layer of `stack` by local name (`self_attn.q_proj.lora_A.weight`), with shapes. */
export function bartLayerAdapterSpecs(config: BartConfig, stack: BartStack, settings: LoraSettings): { readonly local: string; readonly shape: readonly number[] }[] {
  const all = bartLoraSpecs(config, settings);
  const layers = stack === 'encoder' ? config.encoderLayers : config.decoderLayers;
  const perLayer = Array.from({ length: layers }, (_, i) => {
    const prefix = `${PEFT_PREFIX}model.${stack}.layers.${i}.`;
    return all.filter((s) => s.name.startsWith(prefix)).map((s) => ({ local: s.name.slice(prefix.length), shape: s.shape }));
  });
  const first = perLayer[0] ?? [];
  perLayer.forEach((specs, i) => {
    if (specs.map((s) => s.local).join() !== first.map((s) => s.local).join()) {
      throw new GraphBuildError(`LoRA adapts different modules in model.${stack}.layers.0 and layers.${i}; the block engine runs every layer of a stack with one graph`);
    }
  });
  return first;
}

/**
 * The adapters of one layer for the layer functions: `valueOf(local)` gives the input holding an
 * adapter tensor by its name inside the layer (`self_attn.q_proj.lora_A.weight`), null where the
 * module is not adapted. Each adapter's lora_dropout site is `<site><module>.lora`.
 */
export function layerAdaptersFrom(valueOf: (local: string) => Value | null, settings: LoraSettings, site: string): LayerAdapters {
  const scale = loraScale(settings);
  return (module) => {
    const a = valueOf(`${module}.lora_A.weight`);
    const b = valueOf(`${module}.lora_B.weight`);
    if (!a || !b) return null;
    return { a, b, scale, site: `${site}${module}.lora` };
  };
}

/** The same for the whole-model graph, whose adapter inputs carry PEFT's full names. */
export function bartLayerAdapters(layerPrefix: string, settings: LoraSettings, valueOf: (name: string) => Value | null, site: string): LayerAdapters {
  return layerAdaptersFrom((local) => valueOf(`${PEFT_PREFIX}${layerPrefix}.${local}`), settings, site);
}
