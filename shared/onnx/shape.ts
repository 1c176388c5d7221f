import { GraphBuildError } from '../errors.js';

// A dimension is a known size or a named symbol ('batch', 'src_len', ...). Symbols let one session
// serve every batch and sequence length; equal symbols are the same size, checked at build time.
export type Dim = number | string;
export type Shape = readonly Dim[];

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function sameDim(a: Dim, b: Dim): boolean {
  return a === b;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => sameDim(d, b[i]!));
}

/** Numpy broadcasting of two shapes; throws naming `op` when they do not broadcast. */
export function broadcastShapes(op: string, a: Shape, b: Shape): Dim[] {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = i - (rank - a.length) >= 0 ? a[i - (rank - a.length)]! : 1;
    const db = i - (rank - b.length) >= 0 ? b[i - (rank - b.length)]! : 1;
    if (sameDim(da, db) || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else throw new GraphBuildError(`${op}: shapes ${formatShape(a)} and ${formatShape(b)} do not broadcast (dim ${i}: ${da} vs ${db})`);
  }
  return out;
}

/** Product of dims; symbols multiply into a symbolic product such as 'batch*tgt_len'. */
export function dimProduct(dims: readonly Dim[]): Dim {
  let known = 1;
  const symbols: string[] = [];
  for (const d of dims) {
    if (typeof d === 'number') known *= d;
    else symbols.push(d);
  }
  if (symbols.length === 0) return known;
  if (known === 1) return symbols.join('*');
  return [String(known), ...symbols].join('*');
}

export function normaliseAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new GraphBuildError(`${op}: axis ${axis} out of range for rank ${rank}`);
  return a;
}
