import test from 'node:test';
import assert from 'node:assert/strict';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { resizeEmbeddings } from '../../../shared/weights/resize-embeddings.js';

// HF resize_token_embeddings with mean_resizing: old rows kept, new rows the mean of the old ones
// (computed in float64, stored float32), a smaller vocabulary cuts rows; other tensors copied.

const spec = (rows: number) => [
  { name: 'embed', shape: [rows, 3], init: { kind: 'zeros' } as const },
  { name: 'norm', shape: [3], init: { kind: 'ones' } as const },
  { name: 'head', shape: [rows, 3], init: { kind: 'zeros' } as const },
];

test('growing: old rows kept, each new row the column mean of the old rows; other tensors unchanged', () => {
  const from = FlatLayout.fromSpecs(spec(4));
  const to = FlatLayout.fromSpecs(spec(6));
  const old = Float32Array.from({ length: from.totalSize }, (_, i) => (i * 7) % 11 - 5);
  const out = resizeEmbeddings(old, from, to, ['embed', 'head']);
  for (const table of ['embed', 'head']) {
    const src = from.view(old, table);
    const dst = to.view(out, table);
    assert.deepEqual(dst.subarray(0, 12), src);
    for (let c = 0; c < 3; c++) {
      const mean = Math.fround((src[c]! + src[3 + c]! + src[6 + c]! + src[9 + c]!) / 4);
      assert.equal(dst[12 + c], mean);
      assert.equal(dst[15 + c], mean);
    }
  }
  assert.deepEqual(to.view(out, 'norm'), from.view(old, 'norm'));
});

test('shrinking cuts rows (polyglot-ko: 30080 rows, 30008 ids with the prefixes); a non-table that changes size is refused', () => {
  const from = FlatLayout.fromSpecs(spec(5));
  const to = FlatLayout.fromSpecs(spec(3));
  const old = Float32Array.from({ length: from.totalSize }, (_, i) => i);
  const out = resizeEmbeddings(old, from, to, ['embed', 'head']);
  assert.deepEqual(to.view(out, 'embed'), from.view(old, 'embed').subarray(0, 9));
  assert.deepEqual(to.view(out, 'head'), from.view(old, 'head').subarray(0, 9));
  assert.throws(() => resizeEmbeddings(old, from, to, ['embed']), /head changes size but is not an embedding table/u);
});
