import test from 'node:test';
import assert from 'node:assert/strict';
import { NeoXFamily } from '../../../shared/models/neox-family.js';
import { rngStream } from '../../../shared/random.js';
import { neoxBatch, leftPaddedBatch, randomValues, tinyNeoX, WholeModel, type Params } from './neox-helpers.js';

// Whole-model gradients in float64 against central finite differences of the same graph's loss,
// for two random coordinates of every parameter tensor (and of every LoRA adapter). As in
// t5-gradients.test.ts: h = 1e-5 gives truncation ~h^2 |L'''| ~1e-10 and rounding ~eps |L| / h
// ~1e-10 for loss sums near 30, so 1e-7 of the largest gradient entry leaves three orders of
// margin, while a wrong rule or a mis-wired gradient (errors of order the gradient) fails by far.
const H = 1e-5;
const TOL = 1e-7;

async function checkAgainstFiniteDifferences(model: WholeModel, values: Params, names: readonly string[], batch = neoxBatch()): Promise<void> {
  const out = await model.run(values, batch);
  const grads = new Map(names.map((n) => [n, out[`grad.${n}`]!.data as Float64Array]));
  const gmax = [...grads.values()].reduce((m, g) => g.reduce((a, x) => Math.max(a, Math.abs(x)), m), 0);
  assert.ok(gmax > 0);
  const r = rngStream(2, 3);
  for (const name of names) {
    const v = values.get(name)!;
    for (let k = 0; k < 2; k++) {
      const i = Math.floor(r.uniform() * v.length);
      const old = v[i]!;
      v[i] = old + H;
      const up = await model.loss(values, batch);
      v[i] = old - H;
      const down = await model.loss(values, batch);
      v[i] = old;
      const fd = (up - down) / (2 * H);
      const analytic = grads.get(name)![i]!;
      assert.ok(Math.abs(fd - analytic) <= TOL * gmax, `${name}[${i}]: analytic ${analytic} vs finite difference ${fd}`);
    }
  }
}

for (const variant of [
  { name: 'parallel residual, right padding', overrides: {}, batch: neoxBatch, tokens: 6 },
  { name: 'sequential residual, left padding', overrides: { use_parallel_residual: false }, batch: leftPaddedBatch, tokens: 6 },
  { name: 'full rotary (rotary_pct 1)', overrides: { rotary_pct: 1 }, batch: neoxBatch, tokens: 6 },
]) {
  test(`whole-model gradients match finite differences: ${variant.name}`, async () => {
    const config = tinyNeoX(variant.overrides);
    const model = await WholeModel.create(config, { gradients: 'dense' });
    try {
      const specs = new NeoXFamily(config).paramSpecs();
      const values = randomValues(specs, 1);
      const out = await model.run(values, variant.batch());
      // Labels shifted by one: position t scores labels[t + 1]; -100 and the last position score nothing.
      assert.equal(Number(out.token_count!.data[0]), variant.tokens);
      await checkAgainstFiniteDifferences(model, values, specs.map((s) => s.name), variant.batch());
    } finally {
      await model.release();
    }
  });
}

test('LoRA adapter gradients (A and B, on qkv and dense_4h_to_h) match finite differences', async () => {
  const config = tinyNeoX();
  const lora = { r: 2, alpha: 4, targets: ['query_key_value', 'dense_4h_to_h'] };
  const model = await WholeModel.create(config, { gradients: 'dense', lora });
  try {
    const family = new NeoXFamily(config, lora);
    // B random too (not PEFT's zero init): with B = 0, A's gradient would be zero and prove nothing.
    const values = new Map([...randomValues(family.frozenSpecs(), 1), ...randomValues(family.paramSpecs(), 7)]);
    assert.deepEqual(model.graph.gradientOutputs.length, 8, '2 layers x 2 modules x (A, B)');
    await checkAgainstFiniteDifferences(model, values, family.paramSpecs().map((s) => s.name));
  } finally {
    await model.release();
  }
});

test('LoRA with B = 0 gives exactly the base model loss', async () => {
  const config = tinyNeoX();
  const lora = { r: 3, alpha: 16, targets: ['query_key_value', 'attention.dense', 'dense_h_to_4h', 'dense_4h_to_h'] };
  const base = await WholeModel.create(config);
  const adapted = await WholeModel.create(config, { lora });
  try {
    const family = new NeoXFamily(config, lora);
    const values = randomValues(family.frozenSpecs(), 3);
    const adapters = randomValues(family.paramSpecs(), 4);
    for (const [name, v] of adapters) if (name.includes('.lora_B.')) v.fill(0);
    const batch = neoxBatch();
    // x W^T + b + (x A^T 0) * s adds exact zeros: the same float64 numbers, not merely close ones.
    assert.equal(await adapted.loss(new Map([...values, ...adapters]), batch), await base.loss(values, batch));
  } finally {
    await base.release();
    await adapted.release();
  }
});

test('float32 (Erf kernel, engine layout with row gradients) and float64 graphs agree to float32 precision', async () => {
  const config = tinyNeoX();
  const specs = new NeoXFamily(config).paramSpecs();
  // float32-representable values, so both graphs see the same parameters.
  const values = new Map([...randomValues(specs, 5)].map(([n, v]) => [n, Float64Array.from(Float32Array.from(v))]));
  const m64 = await WholeModel.create(config, { gradients: 'dense' });
  const m32 = await WholeModel.create(config, { gradients: 'rows', dtype: 'float32' });
  try {
    const batch = neoxBatch();
    const [o64, o32] = [await m64.run(values, batch), await m32.run(values, batch)];
    const [l64, l32] = [Number(o64.loss_sum!.data[0]), Number(o32.loss_sum!.data[0])];
    // float32 rounding through ~40 ops of depth: 1e-5 relative is ~100 ulps of headroom.
    assert.ok(Math.abs(l64 - l32) < 1e-5 * l64, `float64 ${l64} vs float32 ${l32}`);
    let gmax = 0;
    let worst = 0;
    m32.graph.gradientOutputs.forEach((outs, i) => {
      const name = specs[i]!.name;
      const g64 = o64[`grad.${name}`]!.data as Float64Array;
      const g32 = new Float64Array(g64.length);
      if (outs.dense) (o32[outs.dense]!.data as Float32Array).forEach((v, k) => (g32[k] = v));
      for (const r of outs.rows) {
        const rows = o32[r.rows]!.data as Float32Array;
        const idx = o32[r.indices]!.data as Int32Array;
        const width = rows.length / idx.length;
        idx.forEach((row, n) => { for (let c = 0; c < width; c++) g32[row * width + c]! += rows[n * width + c]!; });
      }
      g64.forEach((v, k) => { gmax = Math.max(gmax, Math.abs(v)); worst = Math.max(worst, Math.abs(v - g32[k]!)); });
    });
    assert.ok(worst < 1e-4 * gmax, `worst float32 gradient error ${worst} of max ${gmax}`);
  } finally {
    await m64.release();
    await m32.release();
  }
});
