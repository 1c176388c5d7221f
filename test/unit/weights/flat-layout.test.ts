import assert from 'node:assert/strict';
import test from 'node:test';
import { WeightsMismatchError } from '../../../shared/errors.js';
import { T5_PRESETS } from '../../../shared/models/presets.js';
import { parseT5Config } from '../../../shared/models/t5-config.js';
import { numel, t5ParamSpecs, type ParamSpec } from '../../../shared/models/t5-params.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';

const normal = { kind: 'normal', std: 1 } as const;
const specs: ParamSpec[] = [
  { name: 'a', shape: [2, 3], init: normal },
  { name: 'b', shape: [4], init: { kind: 'ones' } },
  { name: 'c', shape: [], init: normal },
  { name: 'd', shape: [0, 5], init: normal },
  { name: 'e', shape: [1, 2], init: normal },
];

test('parameters are laid out back to back in spec order', () => {
  const layout = FlatLayout.fromSpecs(specs);
  assert.deepEqual(
    layout.params.map((p) => [p.index, p.name, p.offset, p.size]),
    [
      [0, 'a', 0, 6],
      [1, 'b', 6, 4],
      [2, 'c', 10, 1],
      [3, 'd', 11, 0],
      [4, 'e', 11, 2],
    ],
  );
  assert.equal(layout.totalSize, 13);
  assert.deepEqual(layout.get('b').shape, [4]);
  assert.ok(layout.has('e') && !layout.has('z'));
  assert.equal(FlatLayout.fromSpecs([]).totalSize, 0);
});

test('view is a window on the flat buffer, not a copy', () => {
  const layout = FlatLayout.fromSpecs(specs);
  const flat = new Float32Array(16); // longer than the layout: padding is allowed
  const b = layout.view(flat, 'b');
  assert.equal(b.buffer, flat.buffer);
  b.fill(7);
  assert.deepEqual([...flat.subarray(5, 11)], [0, 7, 7, 7, 7, 0]);
  flat[11] = 3;
  assert.equal(layout.view(flat, 'e')[0], 3);
  assert.equal(layout.view(flat, 'd').length, 0);
});

test('misuse is refused: short buffers, unknown names, duplicate names', () => {
  const layout = FlatLayout.fromSpecs(specs);
  assert.throws(() => layout.view(new Float32Array(12), 'a'), (e: unknown) => e instanceof WeightsMismatchError && /12 elements, the layout needs 13/.test(e.message));
  assert.throws(() => layout.get('zz'), /no parameter named 'zz'/);
  assert.throws(() => FlatLayout.fromSpecs([...specs, specs[0]!]), /'a' listed twice/);
});

test('the layout is frozen', () => {
  const layout = FlatLayout.fromSpecs(specs);
  assert.ok(Object.isFrozen(layout) && Object.isFrozen(layout.params) && Object.isFrozen(layout.params[0]) && Object.isFrozen(layout.params[0]!.shape));
  assert.throws(() => {
    (layout as { totalSize: number }).totalSize = 1;
  }, TypeError);
});

test('paramsInRange lists the parameters overlapping a range (a ZeRO rank slice)', () => {
  const layout = FlatLayout.fromSpecs(specs);
  assert.deepEqual(layout.paramsInRange(5, 7).map((p) => p.name), ['a', 'b']);
  assert.deepEqual(layout.paramsInRange(10, 11).map((p) => p.name), ['c']);
  assert.deepEqual(layout.paramsInRange(11, 13).map((p) => p.name), ['e']);
  assert.deepEqual(layout.paramsInRange(13, 13), []);
});

test('a pko-t5-base layout covers its parameter count', () => {
  const config = parseT5Config(T5_PRESETS['pko-t5-base']);
  const all = t5ParamSpecs(config);
  const layout = FlatLayout.fromSpecs(all);
  assert.equal(layout.totalSize, all.reduce((a, s) => a + numel(s.shape), 0));
  // Counted by hand: embeddings + untied head 2*50358*768; encoder block 4*768^2 (attention)
  // + 3*768*2048 (gated FFN) + 2*768 (norms); decoder block adds cross attention 4*768^2 and a norm;
  // one relative bias 32x12 per stack; two final norms. 275.6 M floats, 1.1 GB in F32.
  const embeddings = 2 * 50358 * 768;
  const encoderBlock = 4 * 768 ** 2 + 3 * 768 * 2048 + 2 * 768;
  const decoderBlock = 8 * 768 ** 2 + 3 * 768 * 2048 + 3 * 768;
  assert.equal(layout.totalSize, embeddings + 12 * (encoderBlock + decoderBlock) + 2 * 32 * 12 + 2 * 768);
  assert.equal(layout.totalSize, 275_579_136);
  const last = layout.params.at(-1)!;
  assert.equal(last.name, 'lm_head.weight');
  assert.equal(last.offset + last.size, layout.totalSize);
});
