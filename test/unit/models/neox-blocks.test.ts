import test from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { blockModels, type BlockMode, type BlockModels } from '../../../shared/autodiff/block-models.js';
import type { LoraOptions } from '../../../shared/models/neox-layers.js';
import { NeoXFamily } from '../../../shared/models/neox-family.js';
import { rngStream } from '../../../shared/random.js';
import { neoxBatch, randomValues, tinyNeoX, WholeModel, type Params } from './neox-helpers.js';

// The model cut into blocks (embed, each layer, head) and run block by block through
// blockModels + onnxruntime, the forward chained through the 'hidden' stream and the backward
// seeded by hand from the head down, must give the whole graph's loss and gradients. Both sides
// run the same float64 ops on the same values, but ORT may order sums differently (the head's
// hidden gradient is summed over heads in another graph shape; layer outputs cross sessions):
// agreement to ~1e-13 relative is expected, 1e-9 of the largest gradient entry is the bound.
const TOL = 1e-9;

interface Sessions {
  readonly models: BlockModels;
  readonly sites: readonly string[];
  readonly forward: ort.InferenceSession | null;
  /** Null for a block with nothing to differentiate (the embedding under LoRA). */
  readonly backward: ort.InferenceSession | null;
}

const create = (bytes: Uint8Array) => ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });

async function runByName(session: ort.InferenceSession, all: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const name of session.inputNames) {
    const t = all[name];
    if (!t) throw new Error(`no value for block input ${name}`);
    feeds[name] = t;
  }
  return session.run(feeds);
}

/** Loss and gradients (by flat name) of the block-by-block run. */
async function blockwise(family: NeoXFamily, values: Params, mode: BlockMode, masks: Record<string, ort.Tensor>): Promise<{ loss: number; tokens: number; grads: Map<string, Float64Array> }> {
  const batch = neoxBatch();
  const shapes = new Map([...family.frozenSpecs(), ...family.paramSpecs()].map((s) => [s.name, s.shape]));
  const sessions = new Map<string, Sessions>();
  for (const kind of family.blockKinds) {
    const def = family.buildBlock(kind, { dtype: 'float64', dropout: Object.keys(masks).length > 0 });
    const models = blockModels(def, mode);
    sessions.set(kind, { models, sites: def.dropoutSites.map((d) => d.input), forward: models.forward ? await create(models.forward) : null, backward: models.backward ? await create(models.backward) : null });
  }
  try {
    const data = family.feeds(batch, 'float64');
    const plan = family.blockPlan();
    const inputsOf = (k: number, hidden: ort.Tensor | null): Record<string, ort.Tensor> => {
      const block = plan[k]!;
      const feeds: Record<string, ort.Tensor> = { ...data };
      if (block.ids) feeds.ids = data[block.ids.input]!;
      for (const [input, name] of block.params) feeds[input] = new ort.Tensor('float64', values.get(name)!, [...shapes.get(name)!]);
      if (hidden) feeds.hidden = hidden;
      // a block's site dropout.X is the whole model's dropout.<sitePrefix>X (the engines' mask key)
      for (const site of sessions.get(block.kind)!.sites) feeds[site] = masks[`dropout.${block.sitePrefix}${site.slice('dropout.'.length)}`]!;
      return feeds;
    };
    // forward: embed, layers; keep each block's input (and its saved activations)
    const blockInputs: (ort.Tensor | null)[] = [];
    const saved: Record<string, ort.Tensor>[] = [];
    let hidden: ort.Tensor | null = null;
    for (let k = 0; k < plan.length - 1; k++) {
      const s = sessions.get(plan[k]!.kind)!;
      blockInputs.push(hidden);
      const out = await runByName(s.forward!, inputsOf(k, hidden));
      saved.push(Object.fromEntries(s.models.saved.map((n) => [n, out[n]!])));
      hidden = out.out!;
    }
    // head: loss and its gradients in one model
    const grads = new Map<string, Float64Array>();
    const collect = (k: number, s: Sessions, out: Record<string, ort.Tensor>) => {
      const params = plan[k]!.params;
      for (const pg of s.models.paramGradients) {
        const name = params.get(pg.param)!;
        const target = grads.get(name) ?? new Float64Array(values.get(name)!.length);
        grads.set(name, target);
        if (pg.dense) (out[pg.dense]!.data as Float64Array).forEach((v, i) => (target[i]! += v));
        for (const r of pg.rows) {
          const rows = out[r.rows]!.data as Float64Array;
          const indices = out[r.indices]!.data as Int32Array | BigInt64Array;
          const width = rows.length / indices.length;
          indices.forEach((row: number | bigint, n: number) => {
            for (let c = 0; c < width; c++) target[Number(row) * width + c]! += rows[n * width + c]!;
          });
        }
      }
    };
    const headK = plan.length - 1;
    const head = sessions.get('head')!;
    const headOut = await runByName(head.backward!, inputsOf(headK, hidden));
    collect(headK, head, headOut);
    let seed = headOut[head.models.activationGradients[0]!.gradient]!;
    // backward from the last layer down to the embedding
    for (let k = headK - 1; k >= 0; k--) {
      const s = sessions.get(plan[k]!.kind)!;
      if (!s.backward) continue;
      const feeds = { ...inputsOf(k, blockInputs[k]!), ...saved[k]!, [s.models.seeds[0]!.seed]: seed };
      const out = await runByName(s.backward, feeds);
      collect(k, s, out);
      if (s.models.activationGradients.length > 0) seed = out[s.models.activationGradients[0]!.gradient]!;
    }
    return { loss: Number(headOut.loss_sum!.data[0]), tokens: Number(headOut.token_count!.data[0]), grads };
  } finally {
    for (const s of sessions.values()) {
      await s.forward?.release();
      await s.backward?.release();
    }
  }
}

/** Keep-masks for every whole-model dropout site (about 10% dropped), seeded. */
function randomMasks(family: NeoXFamily): Record<string, ort.Tensor> {
  const batch = neoxBatch();
  const dims: Record<string, number> = { batch: batch.batchSize, seq: batch.seqLen };
  const r = rngStream(8, 8);
  return Object.fromEntries(family.wholeDropoutSites('float64').map((site) => {
    const shape = site.shape.map((d) => (typeof d === 'number' ? d : dims[d]!));
    const keep = Uint8Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (r.uniform() < 0.9 ? 1 : 0));
    return [site.input, new ort.Tensor('bool', keep, shape)];
  }));
}

async function compare(lora: LoraOptions | undefined, mode: BlockMode, dropout = false): Promise<void> {
  const config = tinyNeoX(dropout ? { hidden_dropout: 0.1, attention_dropout: 0.1 } : {});
  const family = new NeoXFamily(config, lora);
  const values = new Map([...randomValues(family.frozenSpecs(), 1), ...randomValues(family.paramSpecs(), 2)]);
  const masks = dropout ? randomMasks(family) : {};
  // embedding + per layer: attention probs, attention out, MLP out, LoRA input per target
  if (dropout) assert.equal(Object.keys(masks).length, 1 + config.numLayers * (3 + (lora?.targets.length ?? 0)));
  const whole = await WholeModel.create(config, { gradients: 'dense', dropout, ...(lora ? { lora } : {}) });
  try {
    const out = await whole.run(values, neoxBatch(), masks);
    const blocks = await blockwise(family, values, mode, masks);
    const loss = Number(out.loss_sum!.data[0]);
    assert.equal(blocks.tokens, Number(out.token_count!.data[0]));
    assert.ok(Math.abs(blocks.loss - loss) <= TOL * Math.abs(loss), `loss ${blocks.loss} vs ${loss}`);
    const trained = family.paramSpecs();
    const wholeGrads = new Map(trained.map((s) => [s.name, out[`grad.${s.name}`]!.data as Float64Array]));
    const gmax = [...wholeGrads.values()].reduce((m, g) => g.reduce((a, x) => Math.max(a, Math.abs(x)), m), 0);
    for (const s of trained) {
      const b = blocks.grads.get(s.name);
      assert.ok(b, `no block gradient for ${s.name}`);
      const w = wholeGrads.get(s.name)!;
      const worst = w.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
      assert.ok(worst <= TOL * gmax, `${s.name}: block gradient differs by ${worst} (largest entry ${gmax})`);
    }
  } finally {
    await whole.release();
  }
}

for (const mode of ['recompute', 'saved'] as const) {
  test(`blocks chained by hand give the whole graph's loss and gradients (${mode})`, () => compare(undefined, mode));
}
test('with LoRA, the blocks give the whole graph\'s adapter gradients', () => compare({ r: 2, alpha: 4, targets: ['query_key_value', 'dense_h_to_4h'] }, 'saved'));
// The same masks keyed by the whole model's site names: checks the sitePrefix mapping and that
// every dropout (embedding, attention probabilities, attention and MLP outputs, LoRA inputs) is wired alike.
test('with dropout (model and LoRA, fed masks), the blocks give the whole graph\'s loss and gradients', () =>
  compare({ r: 2, alpha: 4, targets: ['query_key_value'], dropout: 0.1 }, 'saved', true));
