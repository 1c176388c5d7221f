import test from 'node:test';
import assert from 'node:assert/strict';
import type { LoraSettings } from '../../../shared/models/lora.js';
import { BartFamily } from '../../../shared/models/bart-family.js';
import { BART_SHARED } from '../../../shared/models/bart-params.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { BlockEngine } from '../../../worker/engine/block-engine.js';
import { dropoutMaskFeeds } from '../../../worker/engine/engine-session.js';
import { bartBatch, familyValues, tinyBart, WholeBart, type Params } from './bart-helpers.js';

// The generic block engine running BartFamily against the whole-model graph (its oracle): the same
// parameters, batch and dropout masks, so the same function; only the graph is cut differently, the
// sums across blocks (model.shared over both preludes and the head, encoder.out over every decoder
// layer) are added in another order, and ORT may fuse kernels differently. float64 throughout: such
// reorderings err by ~1e-16 x (number of terms), so 1e-10 of each tensor's largest entry is a bound
// with six orders of headroom that any mis-wired stream, missing sum or wrong parameter breaks.
// Plus an absolute floor of 1e-13 of the model's largest gradient entry, for tensors whose gradient
// is zero in exact arithmetic: k_proj's bias adds q.b_k to every score of a query alike, which
// softmax cancels, so both sides hold only rounding noise (~1e-16 of the activations) there.
const TOL = 1e-10;
const FLOOR = 1e-13;

function flatOf(layout: FlatLayout, values: Params): Float64Array {
  const flat = new Float64Array(layout.totalSize);
  for (const p of layout.params) flat.set(values.get(p.name)!, p.offset);
  return flat;
}

interface Variant {
  readonly name: string;
  readonly overrides?: Record<string, unknown>;
  readonly lora?: LoraSettings;
  readonly checkpointing?: boolean;
  readonly dropout?: boolean;
}

async function compare(v: Variant): Promise<void> {
  const config = tinyBart(v.overrides);
  const family = new BartFamily(config, v.lora ?? null);
  const values = familyValues(family, 31);
  const layout = FlatLayout.fromSpecs(family.paramSpecs());
  const frozen = FlatLayout.fromSpecs(family.frozenSpecs());
  const batch = bartBatch();
  const key = v.dropout ? { seed: 3, step: 2, sampleIndices: [10, 11] } : undefined;
  const engine = await BlockEngine.create(family, { dtype: 'float64', dropout: v.dropout ?? false, checkpointing: v.checkpointing ?? false, intraOpThreads: 1 }, flatOf(frozen, values));
  const whole = await WholeBart.create(config, { gradients: 'dense', dropout: v.dropout ?? false, ...(v.lora ? { lora: v.lora } : {}) });
  try {
    // The whole graph's masks drawn exactly as the engine draws them: same key, site index = position among the whole model's sites.
    const sites = family.wholeDropoutSites('float64');
    const masks = v.dropout ? dropoutMaskFeeds(sites, { batch: 2, src_len: batch.srcLen, tgt_len: batch.tgtLen }, family.dropoutRate, (_, i) => i, key) : {};
    if (v.dropout) assert.ok(sites.length > 10, `dropout sites in use: ${sites.length}`);
    const out = await whole.run(values, batch, masks);

    const grad = new Float64Array(layout.totalSize).fill(Number.NaN);
    let expectHi = layout.totalSize;
    const loss = await engine.forwardBackward(flatOf(layout, values), batch, key, (lo, hi, g) => {
      assert.equal(hi, expectHi, `unit [${lo}, ${hi}) after one ending at ${expectHi}`);
      grad.set(g, lo);
      expectHi = lo;
    });
    assert.equal(expectHi, 0, 'the units cover the flat buffer');
    assert.equal(loss.tokenCount, Number(out.token_count!.data[0]));
    const want = Number(out.loss_sum!.data[0]);
    assert.ok(Math.abs(loss.lossSum - want) <= TOL * Math.abs(want), `loss ${loss.lossSum} vs ${want}`);
    const largest = (a: Float64Array) => a.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    const gmax = layout.params.reduce((m, p) => Math.max(m, largest(out[`grad.${p.name}`]!.data as Float64Array)), 0);
    for (const p of layout.params) {
      const w = out[`grad.${p.name}`]!.data as Float64Array;
      const g = grad.subarray(p.offset, p.offset + p.size);
      const bound = TOL * largest(w) + FLOOR * gmax;
      if (p.name.endsWith('k_proj.bias')) assert.ok(largest(w) <= FLOOR * gmax, `${p.name}: softmax cancels it, yet its gradient is ${largest(w)}`);
      for (let i = 0; i < w.length; i++) {
        const err = Math.abs(g[i]! - w[i]!);
        if (!(err <= bound)) assert.fail(`${p.name}[${i}]: block engine ${g[i]} vs whole ${w[i]} (|error| ${err.toExponential(2)} > ${bound.toExponential(2)})`);
      }
    }
  } finally {
    await engine.release();
    await whole.release();
  }
}

for (const v of [
  { name: 'saved activations' },
  { name: 'activation checkpointing (recompute)', checkpointing: true },
  { name: 'untied lm_head, 2 decoder heads', overrides: { tie_word_embeddings: false, decoder_attention_heads: 2 } },
  { name: 'LoRA (PEFT default q_proj, v_proj)', lora: { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'v_proj'] } },
  { name: 'dropout on every kind (hidden, attention, activation, LoRA)', overrides: { dropout: 0.1, attention_dropout: 0.1, activation_dropout: 0.1 }, lora: { r: 2, alpha: 4, dropout: 0.1, targetModules: ['q_proj', 'fc1'] }, dropout: true },
  { name: 'dropout, full fine-tuning', overrides: { dropout: 0.1, attention_dropout: 0.05 }, dropout: true },
] satisfies Variant[]) {
  test(`block engine = whole-model oracle (loss and every gradient): ${v.name}`, () => compare(v));
}

test('the tied embedding gradient is the sum over the encoder prelude, the decoder prelude and the head', async () => {
  const config = tinyBart();
  const family = new BartFamily(config);
  const values = familyValues(family, 41);
  const batch = bartBatch();
  // The untied model with lm_head.weight = a copy of model.shared is the same function; its two
  // gradients are the preludes' share (lookups) and the head's share: the tied one must be their sum.
  const tied = await WholeBart.create(config, { gradients: 'dense' });
  const untied = await WholeBart.create(tinyBart({ tie_word_embeddings: false }), { gradients: 'dense' });
  try {
    const gTied = (await tied.run(values, batch))[`grad.${BART_SHARED}`]!.data as Float64Array;
    const split = new Map([...values, ['lm_head.weight', values.get(BART_SHARED)!]]);
    const out = await untied.run(split, batch);
    const gEmbed = out[`grad.${BART_SHARED}`]!.data as Float64Array;
    const gHead = out['grad.lm_head.weight']!.data as Float64Array;
    const scale = gTied.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    let worst = 0;
    gTied.forEach((x, i) => (worst = Math.max(worst, Math.abs(x - (gEmbed[i]! + gHead[i]!)))));
    assert.ok(worst <= TOL * scale, `tied gradient vs embedding + head shares: ${worst}`);
    // Both shares are really there: the head's everywhere, the lookups' on rows of ids in the batch.
    assert.ok(gHead.some((x) => x !== 0) && gEmbed.some((x) => x !== 0));
  } finally {
    await tied.release();
    await untied.release();
  }
});
