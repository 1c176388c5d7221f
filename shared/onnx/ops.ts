import { GraphBuildError } from '../errors.js';
import { isFloat, type DType } from './dtype.js';
import { makeArray, type Attrs, type Value } from './graph.js';
import { broadcastShapes, dimProduct, formatShape, normaliseAxis, sameDim, type Dim, type Shape } from './shape.js';

// The typed DSL: one function per ONNX operator (opset 17), each checking its operands' dtypes
// and shapes and computing its output's. Model builders and gradient rules speak only this.

function fail(op: string, msg: string, ...vals: Value[]): never {
  const operands = vals.map((v) => `${v.name}: ${v.dtype}${formatShape(v.shape)}`).join(', ');
  throw new GraphBuildError(`${op}: ${msg}${operands ? ` (operands ${operands})` : ''}`);
}

function one(op: string, inputs: Value[], attrs: Attrs, dtype: DType, shape: Shape): Value {
  return inputs[0]!.graph.emit(op, inputs, attrs, [{ dtype, shape }])[0]!;
}

function sameDtype(op: string, a: Value, b: Value): void {
  if (a.dtype !== b.dtype) fail(op, `dtype mismatch ${a.dtype} vs ${b.dtype}`, a, b);
}

/** A scalar of x's dtype (ORT requires operands of one dtype). */
export function scalarLike(x: Value, value: number): Value {
  return x.graph.scalar(value, x.dtype);
}

// ---- elementwise, broadcasting -------------------------------------------------------------

function binary(op: string, a: Value, b: Value): Value {
  sameDtype(op, a, b);
  return one(op, [a, b], {}, a.dtype, broadcastShapes(op, a.shape, b.shape));
}
export const add = (a: Value, b: Value) => binary('Add', a, b);
export const sub = (a: Value, b: Value) => binary('Sub', a, b);
export const mul = (a: Value, b: Value) => binary('Mul', a, b);
export const div = (a: Value, b: Value) => binary('Div', a, b);
export const pow = (a: Value, b: Value) => binary('Pow', a, b);
export const max = (a: Value, b: Value) => binary('Max', a, b);
export const min = (a: Value, b: Value) => binary('Min', a, b);
/** Integer modulo (fmod = 0): non-negative operands only in this project. */
export const mod = (a: Value, b: Value) => binary('Mod', a, b);

/**
 * Variadic Sum of same-dtype operands (numpy broadcasting): one pass over n inputs instead of
 * n - 1 Adds that each write an intermediate (autodiff's fan-out sums, e.g. a bias used by every layer).
 */
export function sum(xs: readonly Value[]): Value {
  const first = xs[0];
  if (!first) throw new GraphBuildError('Sum: no operands');
  if (xs.length === 1) return first;
  for (const x of xs) sameDtype('Sum', first, x);
  const shape = xs.slice(1).reduce<Shape>((s, x) => broadcastShapes('Sum', s, x.shape), first.shape);
  return one('Sum', [...xs], {}, first.dtype, shape);
}

function compare(op: string, a: Value, b: Value): Value {
  sameDtype(op, a, b);
  return one(op, [a, b], {}, 'bool', broadcastShapes(op, a.shape, b.shape));
}
export const equal = (a: Value, b: Value) => compare('Equal', a, b);
export const less = (a: Value, b: Value) => compare('Less', a, b);
export const greaterOrEqual = (a: Value, b: Value) => compare('GreaterOrEqual', a, b);

export function where(cond: Value, a: Value, b: Value): Value {
  if (cond.dtype !== 'bool') fail('Where', 'condition must be bool', cond);
  sameDtype('Where', a, b);
  const shape = broadcastShapes('Where', broadcastShapes('Where', cond.shape, a.shape), b.shape);
  return one('Where', [cond, a, b], {}, a.dtype, shape);
}

// ---- elementwise, unary --------------------------------------------------------------------

function unaryFloat(op: string, x: Value): Value {
  if (!isFloat(x.dtype)) fail(op, 'needs a float operand', x);
  return one(op, [x], {}, x.dtype, x.shape);
}
export const neg = (x: Value) => one('Neg', [x], {}, x.dtype, x.shape);
export const sqrt = (x: Value) => unaryFloat('Sqrt', x);
export const exp = (x: Value) => unaryFloat('Exp', x);
export const log = (x: Value) => unaryFloat('Log', x);
export const tanh = (x: Value) => unaryFloat('Tanh', x);
export const erf = (x: Value) => unaryFloat('Erf', x);
export const sin = (x: Value) => unaryFloat('Sin', x);
export const cos = (x: Value) => unaryFloat('Cos', x);
export const relu = (x: Value) => unaryFloat('Relu', x);
export const sigmoid = (x: Value) => unaryFloat('Sigmoid', x);
export const reciprocal = (x: Value) => unaryFloat('Reciprocal', x);
export const identity = (x: Value) => one('Identity', [x], {}, x.dtype, x.shape);

const CAST_TO: Readonly<Record<DType, number>> = { float32: 1, int32: 6, int64: 7, bool: 9, float64: 11 };
export function cast(x: Value, to: DType): Value {
  return one('Cast', [x], { to: { i: CAST_TO[to] } }, to, x.shape);
}

// ---- reductions and normalisations ---------------------------------------------------------

function reducedShape(op: string, x: Value, axes: readonly number[], keepdims: boolean): { axes: number[]; shape: Dim[] } {
  // ONNX reads empty axes as "all axes" (or as a no-op with noop_with_empty_axes); neither is
  // what an empty list says, so callers spell the axes out.
  if (axes.length === 0 && x.rank > 0) fail(op, 'empty axes list: name the axes to reduce', x);
  const norm = axes.map((a) => normaliseAxis(op, a, x.rank));
  const shape: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!norm.includes(i)) shape.push(d);
    else if (keepdims) shape.push(1);
  });
  return { axes: norm, shape };
}

/** ReduceSum (opset 13+: axes as an input). */
export function reduceSum(x: Value, axes: readonly number[], keepdims = true): Value {
  const r = reducedShape('ReduceSum', x, axes, keepdims);
  return one('ReduceSum', [x, x.graph.ints(r.axes)], { keepdims: { i: keepdims ? 1 : 0 } }, x.dtype, r.shape);
}

/** ReduceMean (opset 17: axes as an attribute). */
export function reduceMean(x: Value, axes: readonly number[], keepdims = true): Value {
  const r = reducedShape('ReduceMean', x, axes, keepdims);
  return one('ReduceMean', [x], { axes: { ints: r.axes }, keepdims: { i: keepdims ? 1 : 0 } }, x.dtype, r.shape);
}

export function reduceMax(x: Value, axes: readonly number[], keepdims = true): Value {
  const r = reducedShape('ReduceMax', x, axes, keepdims);
  return one('ReduceMax', [x], { axes: { ints: r.axes }, keepdims: { i: keepdims ? 1 : 0 } }, x.dtype, r.shape);
}

export function reduceProd(x: Value, keepdims = false): Value {
  const r = reducedShape('ReduceProd', x, x.shape.map((_, i) => i), keepdims);
  return one('ReduceProd', [x], { keepdims: { i: keepdims ? 1 : 0 } }, x.dtype, r.shape);
}

export function softmax(x: Value, axis = -1): Value {
  const a = normaliseAxis('Softmax', axis, x.rank);
  return one('Softmax', [unaryFloatCheck('Softmax', x)], { axis: { i: a } }, x.dtype, x.shape);
}

export function logSoftmax(x: Value, axis = -1): Value {
  const a = normaliseAxis('LogSoftmax', axis, x.rank);
  return one('LogSoftmax', [unaryFloatCheck('LogSoftmax', x)], { axis: { i: a } }, x.dtype, x.shape);
}

function unaryFloatCheck(op: string, x: Value): Value {
  if (!isFloat(x.dtype)) fail(op, 'needs a float operand', x);
  return x;
}

// ---- linear algebra ------------------------------------------------------------------------

/** Batched MatMul: [..., m, k] x [..., k, n] with numpy broadcasting of the batch dims. */
export function matmul(a: Value, b: Value): Value {
  sameDtype('MatMul', a, b);
  if (a.rank < 2 || b.rank < 2) fail('MatMul', 'operands need rank >= 2', a, b);
  const k1 = a.shape[a.rank - 1]!;
  const k2 = b.shape[b.rank - 2]!;
  if (!sameDim(k1, k2)) fail('MatMul', `inner dims differ (${k1} vs ${k2})`, a, b);
  const batch = broadcastShapes('MatMul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  return one('MatMul', [a, b], {}, a.dtype, [...batch, a.shape[a.rank - 2]!, b.shape[b.rank - 1]!]);
}

// ---- shape manipulation --------------------------------------------------------------------

/**
 * Transpose. A transpose of a transpose becomes one transpose of the original (the identity
 * permutation: the original itself), so gradient rules can transpose freely: a weight used as
 * W^T gets its gradient back in W's own layout without a weight-sized Transpose at run time.
 */
export function transpose(x: Value, perm: readonly number[]): Value {
  if (perm.length !== x.rank || [...perm].sort((p, q) => p - q).some((p, i) => p !== i)) {
    fail('Transpose', `perm [${perm.join(', ')}] is not a permutation of rank ${x.rank}`, x);
  }
  const inner = x.producer?.op === 'Transpose' ? x.producer : null;
  if (inner) {
    const innerPerm = (inner.attrs.perm as { ints: readonly number[] }).ints;
    return transpose(inner.inputs[0]!, perm.map((p) => innerPerm[p]!));
  }
  if (perm.every((p, i) => p === i)) return x;
  return one('Transpose', [x], { perm: { ints: perm } }, x.dtype, perm.map((p) => x.shape[p]!));
}

/**
 * Reshape to `dims`. Symbols that sit at the same position in the input become ONNX `0` (copy);
 * at most one other symbol becomes `-1` (inferred), so one session serves every batch size.
 */
export function reshape(x: Value, dims: readonly Dim[]): Value {
  let inferred = -1;
  const spec = dims.map((d, i) => {
    if (typeof d === 'number') return d;
    if (i < x.rank && sameDim(x.shape[i]!, d)) return 0;
    if (inferred >= 0) fail('Reshape', `target ${formatShape(dims)} has two dims to infer`, x);
    inferred = i;
    return -1;
  });
  const from = dimProduct(x.shape);
  const to = dimProduct(dims);
  if (typeof from === 'number' && typeof to === 'number' && from !== to) {
    fail('Reshape', `cannot reshape ${from} elements to ${formatShape(dims)}`, x);
  }
  if (typeof from === 'string' && typeof to === 'string' && inferred < 0 && from !== to) {
    fail('Reshape', `element counts ${from} and ${to} differ`, x);
  }
  return one('Reshape', [x, x.graph.ints(spec)], {}, x.dtype, dims);
}

/** Reshape to the run-time shape of `like` (used by gradients, where only `like` knows its layout). */
export function reshapeLike(x: Value, like: Value): Value {
  const from = dimProduct(x.shape);
  const to = dimProduct(like.shape);
  if (typeof from === 'number' && typeof to === 'number' && from !== to) {
    fail('Reshape', `cannot reshape ${from} elements to ${formatShape(like.shape)}`, x, like);
  }
  return one('Reshape', [x, shapeOf(like)], {}, x.dtype, like.shape);
}

export function unsqueeze(x: Value, axes: readonly number[]): Value {
  const rank = x.rank + axes.length;
  const norm = axes.map((a) => normaliseAxis('Unsqueeze', a, rank)).sort((p, q) => p - q);
  const shape: Dim[] = [];
  let src = 0;
  for (let i = 0; i < rank; i++) shape.push(norm.includes(i) ? 1 : x.shape[src++]!);
  return one('Unsqueeze', [x, x.graph.ints(norm)], {}, x.dtype, shape);
}

export function squeeze(x: Value, axes: readonly number[]): Value {
  const norm = axes.map((a) => normaliseAxis('Squeeze', a, x.rank));
  for (const a of norm) if (x.shape[a] !== 1) fail('Squeeze', `dim ${a} is ${x.shape[a]}, not 1`, x);
  return one('Squeeze', [x, x.graph.ints(norm)], {}, x.dtype, x.shape.filter((_, i) => !norm.includes(i)));
}

export function concat(xs: readonly Value[], axis: number): Value {
  const first = xs[0];
  if (!first) throw new GraphBuildError('Concat: no operands');
  const a = normaliseAxis('Concat', axis, first.rank);
  const total: Dim[] = [];
  for (const x of xs) {
    sameDtype('Concat', first, x);
    if (x.rank !== first.rank || x.shape.some((d, i) => i !== a && !sameDim(d, first.shape[i]!))) {
      fail('Concat', `shapes differ outside axis ${a}`, first, x);
    }
    total.push(x.shape[a]!);
  }
  const sum = total.every((d) => typeof d === 'number') ? total.reduce((p, q) => (p as number) + (q as number), 0) : total.join('+');
  const shape = first.shape.map((d, i) => (i === a ? sum : d));
  return one('Concat', [...xs], { axis: { i: a } }, first.dtype, shape);
}

/**
 * x[start:end] along `axis` (Slice, step 1). `end` undefined runs to the end; a negative `end`
 * counts from the end (so a symbolic dim can lose its last elements); otherwise 0 <= start <= end
 * <= the (static) dim. The sliced dim of a symbolic input is a new symbol such as `seq-1`.
 */
export function slice(x: Value, axis: number, start: number, end?: number): Value {
  const a = normaliseAxis('Slice', axis, x.rank);
  const dim = x.shape[a]!;
  if (!Number.isSafeInteger(start) || start < 0) fail('Slice', `start ${start} must be a non-negative integer`, x);
  let size: Dim;
  if (end !== undefined && end >= 0) {
    // A window [start, end): its size is known even when the dim is not (ORT checks end <= dim at run time).
    if (start > end || (typeof dim === 'number' && end > dim)) fail('Slice', `[${start}, ${end}) is not inside dim ${a} of size ${dim}`, x);
    size = end - start;
  } else {
    const cut = start + (end === undefined ? 0 : -end);
    size = typeof dim === 'number' ? dim - cut : cut === 0 ? dim : `${dim}-${cut}`;
  }
  const g = x.graph;
  const stop = end === undefined ? Number.MAX_SAFE_INTEGER : end;
  return one('Slice', [x, g.ints([start]), g.ints([stop]), g.ints([a])], {}, x.dtype, x.shape.map((d, i) => (i === a ? size : d)));
}

/** How many elements a slice drops before and after (the Slice gradient pads them back). */
export function sliceCut(x: Value, axis: number, start: number, end: number | undefined): { before: number; after: number } {
  const dim = x.shape[axis]!;
  if (end === undefined || end === Number.MAX_SAFE_INTEGER) return { before: start, after: 0 };
  if (end < 0) return { before: start, after: -end };
  if (typeof dim !== 'number') fail('Slice', `the gradient of a window [${start}, ${end}) needs a static dim, not ${dim}`, x);
  if (start > end || end > dim) fail('Slice', `[${start}, ${end}) is not inside dim ${axis} of size ${dim}`, x);
  return { before: start, after: dim - end };
}

/** Zero-pad `before`/`after` elements along `axis` (Pad, constant mode), giving `shape` (the caller knows it). */
export function padAxis(x: Value, axis: number, before: number, after: number, shape: Shape): Value {
  const a = normaliseAxis('Pad', axis, x.rank);
  const pads = new Array<number>(2 * x.rank).fill(0);
  pads[a] = before;
  pads[x.rank + a] = after;
  return one('Pad', [x, x.graph.ints(pads)], { mode: { s: 'constant' } }, x.dtype, shape);
}

/** Shape(x) as an int64 tensor, for ops whose size is only known at run time. */
export function shapeOf(x: Value): Value {
  return one('Shape', [x], {}, 'int64', [x.rank]);
}

/** Broadcast `x` to the run-time shape of `like` (Expand). */
export function expandLike(x: Value, like: Value): Value {
  broadcastShapes('Expand', x.shape, like.shape);
  return one('Expand', [x, shapeOf(like)], {}, x.dtype, like.shape);
}

/** Zeros with the dtype and run-time shape of `like` (ConstantOfShape). */
export function zerosLike(like: Value): Value {
  return one('ConstantOfShape', [shapeOf(like)], { value: { t: { data: makeArray(like.dtype, [0]), shape: [1] } } }, like.dtype, like.shape);
}

/** int64 0..n-1 laid out in the run-time shape of `like` (flat element index). */
export function elementIndexLike(like: Value): Value {
  const g = like.graph;
  const count = reduceProd(shapeOf(like), false);
  const flat = one('Range', [g.scalar(0, 'int64'), count, g.scalar(1, 'int64')], {}, 'int64', [dimProduct(like.shape)]);
  return one('Reshape', [flat, shapeOf(like)], {}, 'int64', like.shape);
}

// ---- indexing ------------------------------------------------------------------------------

function checkIndices(op: string, idx: Value): void {
  if (idx.dtype !== 'int32' && idx.dtype !== 'int64') fail(op, 'indices must be int32 or int64', idx);
}

export function gather(data: Value, indices: Value, axis = 0): Value {
  checkIndices('Gather', indices);
  const a = normaliseAxis('Gather', axis, data.rank);
  const shape = [...data.shape.slice(0, a), ...indices.shape, ...data.shape.slice(a + 1)];
  return one('Gather', [data, indices], { axis: { i: a } }, data.dtype, shape);
}

export function gatherElements(data: Value, indices: Value, axis: number): Value {
  checkIndices('GatherElements', indices);
  if (indices.rank !== data.rank) fail('GatherElements', 'indices rank must equal data rank', data, indices);
  const a = normaliseAxis('GatherElements', axis, data.rank);
  return one('GatherElements', [data, indices], { axis: { i: a } }, data.dtype, indices.shape);
}

export function scatterElementsAdd(data: Value, indices: Value, updates: Value, axis: number): Value {
  checkIndices('ScatterElements', indices);
  sameDtype('ScatterElements', data, updates);
  const a = normaliseAxis('ScatterElements', axis, data.rank);
  return one('ScatterElements', [data, indices, updates], { axis: { i: a }, reduction: { s: 'add' } }, data.dtype, data.shape);
}
