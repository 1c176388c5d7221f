import test from 'node:test';
import assert from 'node:assert/strict';
import { OptimizerError } from '../../../shared/errors.js';
import { PKO_T5_BASE, parseT5Config } from '../../../shared/models/t5-config.js';
import { T5_PRESETS } from '../../../shared/models/presets.js';
import { numel, t5ParamSpecs } from '../../../shared/models/t5-params.js';
import { assertRangesWithin, decayAllRule, decayRanges, hfTrainerDecayRule, type DecayRange, type LayoutEntry } from '../../../shared/optim/decay-ranges.js';

/** The flat layout of a T5 config: parameters back to back in HF order, no padding. */
function t5Layout(preset: keyof typeof T5_PRESETS): LayoutEntry[] {
  let offset = 0;
  return t5ParamSpecs(parseT5Config(T5_PRESETS[preset])).map((spec) => {
    const entry = { name: spec.name, offset, size: numel(spec.shape) };
    offset += entry.size;
    return entry;
  });
}

test('HF Trainer rule: weights decay; biases and norm weights (T5, GPT-NeoX, Llama names) do not', () => {
  const decayed = [
    'shared.weight',
    'encoder.block.0.layer.0.SelfAttention.q.weight',
    'decoder.block.3.layer.1.EncDecAttention.o.weight',
    'encoder.block.1.layer.1.DenseReluDense.wi_0.weight',
    'lm_head.weight',
    'gpt_neox.layers.0.attention.query_key_value.weight',
    'gpt_neox.embed_in.weight',
    'model.layers.0.mlp.down_proj.weight',
    'normalizer.weight', // "norm" only as a whole dotted component or after "_"
  ];
  const notDecayed = [
    'encoder.block.0.layer.0.layer_norm.weight',
    'decoder.block.11.layer.2.layer_norm.weight',
    'encoder.final_layer_norm.weight',
    'decoder.final_layer_norm.weight',
    // HF matches "bias" as a substring, so T5's relative position *weights* are not decayed either.
    'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight',
    'gpt_neox.layers.0.input_layernorm.weight',
    'gpt_neox.layers.0.post_attention_layernorm.bias',
    'gpt_neox.layers.0.attention.dense.bias',
    'gpt_neox.final_layer_norm.weight',
    'model.norm.weight',
    'model.layers.0.input_LayerNorm.weight', // matched lower-cased
    'encoder.rmsnorm.weight',
  ];
  for (const name of decayed) assert.equal(hfTrainerDecayRule(name), true, name);
  for (const name of notDecayed) assert.equal(hfTrainerDecayRule(name), false, name);
  assert.equal(decayAllRule('encoder.final_layer_norm.weight'), true);
});

test('pko-t5-base: exactly the 62 layer norms and 2 relative attention biases are not decayed', () => {
  const specs = t5ParamSpecs(parseT5Config(PKO_T5_BASE));
  const notDecayed = specs.filter((s) => !hfTrainerDecayRule(s.name)).map((s) => s.name);
  // 12 encoder blocks x 2 norms + final, 12 decoder blocks x 3 norms + final, 2 relative biases.
  assert.equal(notDecayed.length, 12 * 2 + 1 + 12 * 3 + 1 + 2);
  assert.ok(notDecayed.every((n) => n.endsWith('layer_norm.weight') || n.endsWith('relative_attention_bias.weight')));
});

test('decayRanges over a whole T5 layout gives each element its parameter flag, merged into few ranges', () => {
  const layout = t5Layout('t5-tiny');
  const total = layout.at(-1)!.offset + layout.at(-1)!.size;
  const ranges = decayRanges(layout, 0, total);
  assertRangesWithin(ranges, 0, total, 'ranges');
  assert.equal(ranges[0]!.start, 0);
  assert.equal(ranges.at(-1)!.end, total);
  for (let k = 1; k < ranges.length; k++) {
    assert.equal(ranges[k]!.start, ranges[k - 1]!.end, 'no gaps without padding');
    assert.notEqual(ranges[k]!.decay, ranges[k - 1]!.decay, 'neighbours with one flag are merged');
  }
  for (const entry of layout) {
    for (const at of [entry.offset, entry.offset + entry.size - 1]) {
      const range = ranges.find((r) => r.start <= at && at < r.end)!;
      assert.equal(range.decay, hfTrainerDecayRule(entry.name), `${entry.name} at ${at}`);
    }
  }
  assert.ok(ranges.length < layout.length / 2, `${ranges.length} ranges for ${layout.length} parameters`);
  assert.ok(Object.isFrozen(ranges) && Object.isFrozen(ranges[0]));
  assert.deepEqual(decayRanges(layout, 0, total, decayAllRule), [{ start: 0, end: total, decay: true }]);
});

test('decayRanges clips to [start, end), cutting parameters anywhere, and skips padding', () => {
  const layout: LayoutEntry[] = [
    { name: 'a.weight', offset: 0, size: 10 },
    { name: 'a.layer_norm.weight', offset: 10, size: 4 },
    { name: 'b.weight', offset: 16, size: 10 }, // [14, 16) padding
    { name: 'c.weight', offset: 26, size: 5 },
  ]; // [31, 40) padding
  assert.deepEqual(decayRanges(layout, 5, 12), [
    { start: 5, end: 10, decay: true },
    { start: 10, end: 12, decay: false },
  ]);
  assert.deepEqual(decayRanges(layout, 12, 40), [
    { start: 12, end: 14, decay: false },
    { start: 16, end: 31, decay: true }, // b and c merged, padding left out
  ]);
  assert.deepEqual(decayRanges(layout, 14, 16), []);
  assert.deepEqual(decayRanges(layout, 33, 40), []);
  assert.deepEqual(decayRanges(layout, 7, 7), []);
  // The union over any split equals the whole: ZeRO ranks together cover every parameter once.
  const whole = decayRanges(layout, 0, 40);
  for (const cuts of [[0, 40], [0, 13, 40], [0, 3, 15, 27, 40], [0, 10, 14, 16, 26, 31, 40]]) {
    const pieces = cuts.slice(1).flatMap((end, k) => decayRanges(layout, cuts[k]!, end));
    const flags = (rs: readonly DecayRange[]) => Array.from({ length: 40 }, (_, i) => rs.find((r) => r.start <= i && i < r.end)?.decay ?? null);
    assert.deepEqual(flags(pieces), flags(whole), `cuts ${cuts.join(',')}`);
  }
});

test('decayRanges refuses bad layouts and bounds, naming the entry', () => {
  const bad: Array<[LayoutEntry[], number, number, RegExp]> = [
    [[{ name: 'x', offset: 0, size: 4 }, { name: 'y', offset: 2, size: 4 }], 0, 8, /layout entry y at offset 2 overlaps/],
    [[{ name: 'x', offset: 4, size: 4 }, { name: 'y', offset: 0, size: 4 }], 0, 8, /layout entry y/],
    [[{ name: 'x', offset: 0, size: -1 }], 0, 8, /layout entry x: offset 0 and size -1/],
    [[{ name: 'x', offset: 0.5, size: 1 }], 0, 8, /layout entry x/],
    [[], 5, 4, /0 <= start <= end/],
    [[], -1, 4, /0 <= start <= end/],
  ];
  for (const [layout, start, end, message] of bad) {
    assert.throws(() => decayRanges(layout, start, end), (e: unknown) => e instanceof OptimizerError && message.test(e.message));
  }
});
