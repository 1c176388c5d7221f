import { KpCoordError } from '../errors.js';
import type { FlatLayout } from './flat-layout.js';

// HF `model.resize_token_embeddings(len(tokenizer))` after `tokenizer.add_tokens(...)`: the input
// and output embedding tables take the new vocabulary's rows, old rows kept (cut where the new
// vocabulary is smaller: polyglot-ko's table has 30080 rows for 30006 tokens), each new row the
// mean of the old rows (transformers >= 4.46, `mean_resizing=True`). transformers also adds a draw from
// N(0, 1e-9 * covariance of the old rows), about 3e-5 of the rows' spread; it is left out here
// because the covariance costs vocab x hidden^2 (1.3e11 multiply-adds for polyglot-ko-1.3b) per
// worker at setup, and transformers itself falls back to the plain mean when that covariance is
// not positive definite.

/** `old` (laid out by `from`) with every table in `tables` resized to `to`'s rows; everything else copied. */
export function resizeEmbeddings(old: Float32Array, from: FlatLayout, to: FlatLayout, tables: readonly string[]): Float32Array {
  const out = new Float32Array(to.totalSize);
  for (const p of to.params) {
    const q = from.get(p.name);
    const src = from.view(old, p.name);
    const dest = to.view(out, p.name);
    if (!tables.includes(p.name)) {
      if (q.size !== p.size) throw new KpCoordError(`resizing embeddings: ${p.name} changes size but is not an embedding table`);
      dest.set(src);
      continue;
    }
    const cols = p.shape[1]!;
    const oldRows = q.shape[0]!;
    const newRows = p.shape[0]!;
    if (q.shape[1] !== cols) throw new KpCoordError(`resizing embeddings: ${p.name} [${q.shape.join(', ')}] cannot become [${p.shape.join(', ')}]`);
    dest.set(src.subarray(0, Math.min(oldRows, newRows) * cols));
    const mean = new Float64Array(cols);
    for (let r = 0; r < oldRows; r++) for (let c = 0; c < cols; c++) mean[c]! += src[r * cols + c]!;
    for (let c = 0; c < cols; c++) mean[c]! /= oldRows;
    for (let r = oldRows; r < newRows; r++) dest.set(mean, r * cols);
  }
  return out;
}
