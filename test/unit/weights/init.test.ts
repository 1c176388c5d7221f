import assert from 'node:assert/strict';
import test from 'node:test';
import { WeightsMismatchError } from '../../../shared/errors.js';
import { T5_PRESETS } from '../../../shared/models/presets.js';
import { parseT5Config, type T5Config, type T5ConfigInput } from '../../../shared/models/t5-config.js';
import { t5ParamSpecs } from '../../../shared/models/t5-params.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { initT5Flat, initT5FlatRange } from '../../../shared/weights/init.js';

const SMALL: T5ConfigInput = T5_PRESETS['t5-small-bytes']!;

function setup(input: T5ConfigInput) {
  const config = parseT5Config(input);
  return { config, layout: FlatLayout.fromSpecs(t5ParamSpecs(config)) };
}

/**
 * The std transformers' T5 `_init_weights` gives each parameter, written out here from its source
 * (not taken from t5ParamSpecs, so that a wrong spec fails this test); 'norm' means filled with the factor.
 */
function hfInit(name: string, c: T5Config): { kind: string; std: number | 'norm' } {
  const f = c.initializerFactor;
  const rules: Array<[RegExp, string, number | 'norm']> = [
    [/^(shared|lm_head)\.weight$/, 'embedding', f * 1.0],
    [/\.q\.weight$/, 'q', f * (c.dModel * c.dKv) ** -0.5],
    [/\.[kv]\.weight$/, 'k/v', f * c.dModel ** -0.5],
    [/\.o\.weight$/, 'o', f * (c.numHeads * c.dKv) ** -0.5],
    [/relative_attention_bias\.weight$/, 'relative bias', f * c.dModel ** -0.5],
    [/\.wi(_0|_1)?\.weight$/, 'wi', f * c.dModel ** -0.5],
    [/\.wo\.weight$/, 'wo', f * c.dFf ** -0.5],
    [/layer_norm\.weight$/, 'norm', 'norm'],
  ];
  const rule = rules.find(([re]) => re.test(name));
  assert.ok(rule, `no HF init rule for ${name}`);
  return { kind: rule[1], std: rule[2] };
}

for (const factor of [1.0, 0.5]) {
  test(`init statistics follow HF _init_weights per parameter kind (initializer_factor ${factor})`, () => {
    const { config, layout } = setup({ ...SMALL, initializer_factor: factor });
    const flat = initT5Flat(config, layout, 1234);
    // Pool z = w / std per kind: a kind's z must be N(0, 1). For n pooled values the sample mean has
    // se 1/sqrt(n) and the sample variance se sqrt(2/n); we allow 6 se (a correct init passes with
    // probability 1 - 1e-9; a std off by 2% is caught for every kind holding more than ~50k values,
    // and per parameter a wrong formula (a factor sqrt(d_kv) or more) is caught everywhere).
    const pooled = new Map<string, { n: number; sum: number; sumSq: number }>();
    for (const p of layout.params) {
      const values = layout.view(flat, p.name);
      const { kind, std } = hfInit(p.name, config);
      if (std === 'norm') {
        assert.ok(values.every((v) => v === Math.fround(factor)), `${p.name} filled with ${factor}`);
        continue;
      }
      let sum = 0;
      let sumSq = 0;
      for (const v of values) {
        sum += v / std;
        sumSq += (v / std) ** 2;
      }
      const n = values.length;
      const variance = sumSq / n - (sum / n) ** 2;
      assert.ok(Math.abs(sum / n) < 6 / Math.sqrt(n), `${p.name}: mean/std ${sum / n}`);
      assert.ok(Math.abs(variance - 1) < 6 * Math.sqrt(2 / n), `${p.name}: variance/std^2 ${variance}`);
      const acc = pooled.get(kind) ?? { n: 0, sum: 0, sumSq: 0 };
      pooled.set(kind, { n: acc.n + n, sum: acc.sum + sum, sumSq: acc.sumSq + sumSq });
    }
    assert.deepEqual([...pooled.keys()].sort(), ['embedding', 'k/v', 'o', 'q', 'relative bias', 'wi', 'wo']);
    for (const [kind, { n, sum, sumSq }] of pooled) {
      const variance = sumSq / n - (sum / n) ** 2;
      assert.ok(Math.abs(sum / n) < 6 / Math.sqrt(n), `${kind}: pooled mean ${sum / n} over ${n}`);
      assert.ok(Math.abs(variance - 1) < 6 * Math.sqrt(2 / n), `${kind}: pooled variance ${variance} over ${n}`);
    }
  });
}

test('init is a pure function of the seed', () => {
  const { config, layout } = setup(SMALL);
  const a = initT5Flat(config, layout, 77);
  assert.deepEqual(initT5Flat(config, layout, 77), a);
  const b = initT5Flat(config, layout, 78);
  const same = a.reduce((n, v, i) => n + (v === b[i] ? 1 : 0), 0);
  // Only the layer norms (constant) coincide between seeds.
  const norms = layout.params.filter((p) => p.init.kind === 'ones').reduce((n, p) => n + p.size, 0);
  assert.equal(same, norms);
});

test('each parameter has its own stream: equally shaped weights differ', () => {
  const { config, layout } = setup(SMALL);
  const flat = initT5Flat(config, layout, 5);
  const k = layout.view(flat, 'encoder.block.0.layer.0.SelfAttention.k.weight');
  const v = layout.view(flat, 'encoder.block.0.layer.0.SelfAttention.v.weight');
  const k1 = layout.view(flat, 'encoder.block.1.layer.0.SelfAttention.k.weight');
  assert.equal(k.length, v.length);
  assert.ok(k.some((x, i) => x !== v[i]) && k.some((x, i) => x !== k1[i]));
});

test('any split into ranges (ZeRO ranks, odd boundaries) reproduces the full init bit for bit', () => {
  const { config, layout } = setup(T5_PRESETS['t5-tiny']!);
  const full = initT5Flat(config, layout, 9);
  const total = layout.totalSize;
  for (const world of [1, 2, 3, 7]) {
    const parts: Float32Array[] = [];
    for (let r = 0; r < world; r++) {
      parts.push(initT5FlatRange(config, layout, 9, Math.floor((r * total) / world), Math.floor(((r + 1) * total) / world)));
    }
    const joined = new Float32Array(total);
    let at = 0;
    for (const part of parts) {
      joined.set(part, at);
      at += part.length;
    }
    assert.deepEqual(joined, full, `world ${world}`);
  }
  // Ranges starting on odd elements inside a parameter, and single elements.
  for (const [b, e] of [
    [1, 2],
    [3, 10],
    [8287, 8301],
    [total - 1, total],
    [5, 5],
  ] as const) {
    assert.deepEqual(initT5FlatRange(config, layout, 9, b, e), full.subarray(b, e), `[${b}, ${e})`);
  }
});

test('misuse is refused: a layout of another config, ranges outside the buffer', () => {
  const { config, layout } = setup(SMALL);
  const other = setup(T5_PRESETS['t5-tiny']!).layout;
  assert.throws(() => initT5Flat(config, other, 1), WeightsMismatchError);
  assert.throws(() => initT5FlatRange(config, layout, 1, 5, 4), RangeError);
  assert.throws(() => initT5FlatRange(config, layout, 1, 0, layout.totalSize + 1), RangeError);
  assert.throws(() => initT5Flat(config, layout, -1), RangeError);
});
