import type { T5Config } from '../../shared/models/t5-config.js';
import { layerLocalNames, POSITION_BIAS_TABLE, type T5BlockKind } from '../../shared/models/t5-block-graphs.js';
import { T5_DATA_INPUTS } from '../../shared/models/t5-graph.js';
import type { FlatLayout } from '../../shared/weights/flat-layout.js';

// The blocks of one T5 in forward order, each an instance of a block kind fed its own parameters,
// and the gradient units: the contiguous ranges of the flat buffer whose gradients are complete
// after a given block's backward (DeepSpeed's "ready" partitions). A parameter's gradient is
// complete after the last block of the backward that uses it, i.e. its first user in forward
// order: the shared embedding after the encoder's embedding, a stack's bias table after its
// layer 0. In T5's HF order the units then come out of the backward from the end of the flat
// buffer to its start, which lets ZeRO-2 bucket them into contiguous pieces.

export interface BlockInstance {
  readonly kind: T5BlockKind;
  /** The HF module it stands for, e.g. `encoder.block.3` (logs and errors). */
  readonly label: string;
  /** Turns the block graph's dropout site names into the whole model's (mask keys). */
  readonly sitePrefix: string;
  /** Block-graph parameter input -> flat parameter name. */
  readonly params: ReadonlyMap<string, string>;
  /** Embedding blocks: which ids they look up, and the length of that sequence. */
  readonly ids?: { readonly input: string; readonly length: 'src_len' | 'tgt_len' };
}

export interface GradientUnit {
  /** Flat range [lo, hi). */
  readonly lo: number;
  readonly hi: number;
  /** Index of the block whose backward completes it. */
  readonly block: number;
  /** Flat parameter names in it, in layout order. */
  readonly params: readonly string[];
}

export function t5BlockPlan(config: T5Config): BlockInstance[] {
  const plan: BlockInstance[] = [];
  const embed = (stack: 'encoder' | 'decoder', input: string, length: 'src_len' | 'tgt_len') =>
    plan.push({ kind: 'embed', label: `${stack}.embed_tokens`, sitePrefix: `${stack}.`, params: new Map([['weight', 'shared.weight']]), ids: { input, length } });
  const layers = (stack: 'encoder' | 'decoder', count: number) => {
    const locals = layerLocalNames(config, stack);
    for (let i = 0; i < count; i++) {
      const params = new Map(locals.map((l) => [l, `${stack}.block.${i}.${l}`]));
      params.set(POSITION_BIAS_TABLE, `${stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`);
      plan.push({ kind: `${stack}.block`, label: `${stack}.block.${i}`, sitePrefix: `${stack}.block.${i}.`, params });
    }
  };
  embed('encoder', T5_DATA_INPUTS.inputIds, 'src_len');
  layers('encoder', config.numEncoderLayers);
  plan.push({ kind: 'encoder.final', label: 'encoder.final_layer_norm', sitePrefix: 'encoder.', params: new Map([['final_layer_norm.weight', 'encoder.final_layer_norm.weight']]) });
  embed('decoder', T5_DATA_INPUTS.decoderInputIds, 'tgt_len');
  layers('decoder', config.numDecoderLayers);
  const head = config.tieWordEmbeddings ? 'shared.weight' : 'lm_head.weight';
  plan.push({ kind: 'head', label: 'lm_head', sitePrefix: 'decoder.', params: new Map([['final_layer_norm.weight', 'decoder.final_layer_norm.weight'], ['head.weight', head]]) });
  return plan;
}

/** The gradient units in the order the backward completes them; checks they tile the layout. */
export function gradientUnits(plan: readonly BlockInstance[], layout: FlatLayout): GradientUnit[] {
  const completedBy = new Map<string, number>();
  plan.forEach((b, i) => {
    for (const name of b.params.values()) if (!completedBy.has(name)) completedBy.set(name, i);
  });
  const units: GradientUnit[] = [];
  for (let i = plan.length - 1; i >= 0; i--) {
    const names = layout.params.filter((p) => completedBy.get(p.name) === i);
    if (names.length === 0) continue;
    const lo = names[0]!.offset;
    const hi = names.at(-1)!.offset + names.at(-1)!.size;
    if (names.reduce((n, p) => n + p.size, 0) !== hi - lo) throw new RangeError(`block ${plan[i]!.label}: its gradients are not contiguous in the flat layout`);
    units.push({ lo, hi, block: i, params: names.map((p) => p.name) });
  }
  const missing = layout.params.find((p) => !completedBy.has(p.name));
  if (missing) throw new RangeError(`parameter ${missing.name} is used by no block`);
  units.forEach((u, k) => {
    const next = units[k + 1];
    if (next && next.hi !== u.lo) throw new RangeError(`gradient units of ${plan[u.block]!.label} and ${plan[next.block]!.label} do not come out end to start`);
  });
  if (units.at(-1)?.lo !== 0 || units[0]?.hi !== layout.totalSize) throw new RangeError('gradient units do not cover the flat layout');
  return units;
}
