import type { T5Config } from '../../shared/models/t5-config.js';
import { BIAS_LOCAL, layerLocalNames, type T5BlockKind } from '../../shared/models/t5-block-graphs.js';
import { T5_DATA_INPUTS } from '../../shared/models/t5-graph.js';
import type { FlatLayout } from '../../shared/weights/flat-layout.js';

// The blocks of one T5 in forward order, each an instance of a block kind fed its own parameters
// and its activations from named streams (a stack's hidden state, its attention bias, the encoder
// output): a block reads streams and writes one. In the backward a stream's gradient is the sum
// over the blocks that read it, complete by the time the block that wrote it runs (readers come
// later in forward order, so earlier in the backward).
//
// Gradient units: the contiguous ranges of the flat buffer whose gradients are complete after a
// given block's backward (DeepSpeed's "ready" partitions). Parameters are grouped by HF module
// (shared embedding, each T5Block, each final norm, lm_head); a group is complete after the last
// block of the backward that uses one of its parameters, i.e. its first user in forward order: the
// shared embedding after the encoder's embedding, a stack's block 0 after the stack's bias block.
// In T5's HF order the units then come out from the end of the flat buffer to its start, which lets
// ZeRO-2 bucket them into contiguous pieces.

export interface BlockInstance {
  readonly kind: T5BlockKind;
  /** The HF module it stands for, e.g. `encoder.block.3` (logs and errors). */
  readonly label: string;
  /** Turns the block graph's dropout site names into the whole model's (mask keys). */
  readonly sitePrefix: string;
  /** Block-graph parameter input -> flat parameter name. */
  readonly params: ReadonlyMap<string, string>;
  /** Block-graph activation input -> stream it reads. */
  readonly inputs: ReadonlyMap<string, string>;
  /** The stream its output goes to (null: the head, whose outputs are the loss). */
  readonly output: string | null;
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
  const add = (b: Omit<BlockInstance, 'params' | 'inputs'> & { params: [string, string][]; inputs?: [string, string][] }) =>
    plan.push({ ...b, params: new Map(b.params), inputs: new Map(b.inputs ?? []) });
  const table = (stack: string) => `${stack}.block.0.${BIAS_LOCAL}`;
  add({ kind: 'embed', label: 'encoder.embed_tokens', sitePrefix: 'encoder.', params: [['weight', 'shared.weight']], output: 'encoder.hidden', ids: { input: T5_DATA_INPUTS.inputIds, length: 'src_len' } });
  add({ kind: 'encoder.bias', label: 'encoder.position_bias', sitePrefix: 'encoder.', params: [['weight', table('encoder')]], output: 'encoder.bias' });
  const layer = (stack: 'encoder' | 'decoder', i: number, extra: [string, string][]) =>
    add({
      kind: `${stack}.block`, label: `${stack}.block.${i}`, sitePrefix: `${stack}.block.${i}.`,
      params: layerLocalNames(config, stack).map((l) => [l, `${stack}.block.${i}.${l}`]),
      inputs: [['hidden', `${stack}.hidden`], ['bias', `${stack}.bias`], ...extra], output: `${stack}.hidden`,
    });
  for (let i = 0; i < config.numEncoderLayers; i++) layer('encoder', i, []);
  add({ kind: 'encoder.final', label: 'encoder.final_layer_norm', sitePrefix: 'encoder.', params: [['final_layer_norm.weight', 'encoder.final_layer_norm.weight']], inputs: [['hidden', 'encoder.hidden']], output: 'encoder.out' });
  add({ kind: 'embed', label: 'decoder.embed_tokens', sitePrefix: 'decoder.', params: [['weight', 'shared.weight']], output: 'decoder.hidden', ids: { input: T5_DATA_INPUTS.decoderInputIds, length: 'tgt_len' } });
  add({ kind: 'decoder.bias', label: 'decoder.position_bias', sitePrefix: 'decoder.', params: [['weight', table('decoder')]], output: 'decoder.bias' });
  for (let i = 0; i < config.numDecoderLayers; i++) layer('decoder', i, [['encoder_out', 'encoder.out']]);
  const head = config.tieWordEmbeddings ? 'shared.weight' : 'lm_head.weight';
  add({
    kind: 'head', label: 'lm_head', sitePrefix: 'decoder.', output: null, inputs: [['hidden', 'decoder.hidden']],
    params: [['final_layer_norm.weight', 'decoder.final_layer_norm.weight'], ['head.weight', head]],
  });
  return plan;
}

/** The HF module a parameter belongs to: `shared`, `encoder.block.3`, `lm_head`, ... */
function moduleOf(name: string): string {
  const m = /^((?:en|de)coder\.block\.\d+)\./u.exec(name) ?? /^((?:en|de)coder\.final_layer_norm)\./u.exec(name) ?? /^([^.]+)\./u.exec(name);
  return m ? m[1]! : name;
}

/** The gradient units in the order the backward completes them; checks they tile the layout. */
export function gradientUnits(plan: readonly BlockInstance[], layout: FlatLayout): GradientUnit[] {
  const firstUser = new Map<string, number>();
  plan.forEach((b, i) => {
    for (const name of b.params.values()) if (!firstUser.has(name)) firstUser.set(name, i);
  });
  const missing = layout.params.find((p) => !firstUser.has(p.name));
  if (missing) throw new RangeError(`parameter ${missing.name} is used by no block`);
  // A module's gradients are complete after the backward of the first block (forward order) using any of them.
  const completedBy = new Map<string, number>();
  for (const p of layout.params) {
    const m = moduleOf(p.name);
    completedBy.set(m, Math.min(completedBy.get(m) ?? Infinity, firstUser.get(p.name)!));
  }
  const units: GradientUnit[] = [];
  for (let i = plan.length - 1; i >= 0; i--) {
    const names = layout.params.filter((p) => completedBy.get(moduleOf(p.name)) === i);
    if (names.length === 0) continue;
    const lo = names[0]!.offset;
    const hi = names.at(-1)!.offset + names.at(-1)!.size;
    if (names.reduce((n, p) => n + p.size, 0) !== hi - lo) throw new RangeError(`block ${plan[i]!.label}: the gradients it completes are not contiguous in the flat layout`);
    units.push({ lo, hi, block: i, params: names.map((p) => p.name) });
  }
  units.forEach((u, k) => {
    const next = units[k + 1];
    if (next && next.hi !== u.lo) throw new RangeError(`gradient units of ${plan[u.block]!.label} and ${plan[next.block]!.label} do not come out end to start`);
  });
  if (units.at(-1)?.lo !== 0 || units[0]?.hi !== layout.totalSize) throw new RangeError('gradient units do not cover the flat layout');
  return units;
}

/**
 * The units (indices into `units`) each position of a pass needs ([Note: gather schedule]): a
 * training pass runs the forward of every block but the head (whose forward runs inside its
 * backward), then every block's backward from the head down; an evaluation pass every block's
 * forward.
 */
export function passTraces(plan: readonly BlockInstance[], units: readonly GradientUnit[], layout: FlatLayout): { train: number[][]; eval: number[][] } {
  const unitsOf = plan.map((b) =>
    [...new Set([...b.params.values()].map((name) => {
      const offset = layout.get(name).offset;
      return units.findIndex((u) => offset >= u.lo && offset < u.hi);
    }))].sort((a, b) => a - b),
  );
  const forwards = plan.map((_, k) => k).filter((k) => plan[k]!.output !== null);
  return {
    train: [...forwards, ...plan.map((_, k) => plan.length - 1 - k)].map((k) => unitsOf[k]!),
    eval: plan.map((_, k) => unitsOf[k]!),
  };
}
