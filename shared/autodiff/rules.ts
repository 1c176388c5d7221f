import { GraphBuildError } from '../errors.js';
import type { Node, Value } from '../onnx/graph.js';
import {
  cast, cos, div, exp, expandLike, less, log, matmul, mul, neg, padAxis, pow, reduceSum, reshape, reshapeLike, scalarLike,
  scatterElementsAdd, sin, slice, sliceCut, sub, transpose, unsqueeze, where, zerosLike,
} from '../onnx/ops.js';
import { dimProduct } from '../onnx/shape.js';
import { unbroadcast } from './unbroadcast.js';

// Every operator's gradient rule, in one table. A rule gets the node's inputs `x`, outputs `y`
// and the gradients of its outputs `gy`, and returns one gradient per input, by position
// (null where an input has none, such as indices). Rules may compute gradients nobody asked
// for: nodes that reach no graph output are dropped when the model is serialised.

export interface GradArgs {
  readonly node: Node;
  /** Input i. */
  readonly x: readonly Value[];
  /** Output i. */
  readonly y: readonly Value[];
  /** Gradient of output 0 (every differentiable op here has one output). */
  readonly gy: Value;
}

/**
 * A gradient that is zero except at some rows of a 2-D table: `rows[i]` belongs at row
 * `indices[i]` (repeats add up). An embedding lookup touches a few hundred of 50k rows, so its
 * gradient travels as rows and is summed into the table's gradient by whoever holds it (the
 * engine adds them into the flat gradient; `gradients()` scatters them into a dense table).
 */
export interface RowGradient {
  readonly kind: 'rows';
  /** int32 or int64 [n]; negative indices count from the end, as Gather's do. */
  readonly indices: Value;
  /** [n, columns] */
  readonly rows: Value;
}

export type Gradient = Value | RowGradient;

export type GradRule = (a: GradArgs) => (Gradient | null)[];

const intAttr = (node: Node, name: string): number => {
  const a = node.attrs[name];
  if (!a || !('i' in a)) throw new GraphBuildError(`${node.op}: gradient needs attribute ${name}`);
  return a.i;
};
const intsAttr = (node: Node, name: string): readonly number[] => {
  const a = node.attrs[name];
  if (!a || !('ints' in a)) throw new GraphBuildError(`${node.op}: gradient needs attribute ${name}`);
  return a.ints;
};
/** Reduction axes, from the attribute (ReduceMean) or the constant axes input (ReduceSum). */
const reduceAxes = (node: Node): number[] => {
  const attr = node.attrs.axes;
  if (attr && 'ints' in attr) return [...attr.ints];
  const c = node.inputs[1]?.constant;
  if (!c) throw new GraphBuildError(`${node.op}: gradient needs constant axes`);
  return Array.from(c.data as BigInt64Array, Number);
};
/** Gradient of a reduction: put the reduced axes back, then broadcast over them. */
const spreadOverReduced = (g: Value, x: Value, node: Node): Value => {
  const kept = intAttr(node, 'keepdims') === 1 ? g : unsqueeze(g, reduceAxes(node));
  return expandLike(kept, x);
};

export const gradRules: Readonly<Record<string, GradRule>> = {
  Identity: ({ gy }) => [gy],
  Neg: ({ gy }) => [neg(gy)],
  Add: ({ x: [a, b], gy }) => [unbroadcast(gy, a!), unbroadcast(gy, b!)],
  Sum: ({ x, gy }) => x.map((a) => unbroadcast(gy, a)),
  Sub: ({ x: [a, b], gy }) => [unbroadcast(gy, a!), unbroadcast(neg(gy), b!)],
  Mul: ({ x: [a, b], gy }) => [unbroadcast(mul(gy, b!), a!), unbroadcast(mul(gy, a!), b!)],
  // d(a/b)/db = -a/b^2 = -y/b
  Div: ({ x: [a, b], y: [q], gy }) => [unbroadcast(div(gy, b!), a!), unbroadcast(neg(div(mul(gy, q!), b!)), b!)],
  // d(a^b)/da = b a^(b-1) = b y / a would divide by zero at a = 0; use the power form instead.
  Pow: ({ x: [a, b], y: [p], gy }) => [
    unbroadcast(mul(gy, mul(b!, pow(a!, sub(b!, scalarLike(b!, 1))))), a!),
    unbroadcast(mul(gy, mul(p!, log(a!))), b!),
  ],
  Sqrt: ({ y: [r], gy }) => [div(mul(gy, scalarLike(gy, 0.5)), r!)],
  Exp: ({ y: [e], gy }) => [mul(gy, e!)],
  Log: ({ x: [a], gy }) => [div(gy, a!)],
  Reciprocal: ({ y: [r], gy }) => [neg(mul(gy, mul(r!, r!)))],
  Tanh: ({ y: [t], gy }) => [mul(gy, sub(scalarLike(gy, 1), mul(t!, t!)))],
  // d/dx erf(x) = 2/sqrt(pi) exp(-x^2) (exact gelu)
  Erf: ({ x: [a], gy }) => [mul(gy, mul(scalarLike(gy, 2 / Math.sqrt(Math.PI)), exp(neg(mul(a!, a!)))))],
  Sin: ({ x: [a], gy }) => [mul(gy, cos(a!))],
  Cos: ({ x: [a], gy }) => [neg(mul(gy, sin(a!)))],
  Sigmoid: ({ y: [s], gy }) => [mul(gy, mul(s!, sub(scalarLike(gy, 1), s!)))],
  Relu: ({ x: [a], gy }) => [where(less(scalarLike(a!, 0), a!), gy, scalarLike(gy, 0))],
  Cast: ({ x: [a], gy }) => [cast(gy, a!.dtype)],
  Where: ({ x: [c, a, b], gy }) => [
    null,
    unbroadcast(where(c!, gy, scalarLike(gy, 0)), a!),
    unbroadcast(where(c!, scalarLike(gy, 0), gy), b!),
  ],
  Expand: ({ x: [a], gy }) => [unbroadcast(gy, a!), null],
  Reshape: ({ x: [a], gy }) => [reshapeLike(gy, a!), null],
  Unsqueeze: ({ x: [a], gy }) => [reshapeLike(gy, a!), null],
  Squeeze: ({ x: [a], gy }) => [reshapeLike(gy, a!), null],
  Transpose: ({ node, gy }) => {
    const perm = intsAttr(node, 'perm');
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [transpose(gy, inverse)];
  },
  // Slice: the gradient is gy put back in place, zeros where the slice dropped elements.
  Slice: ({ x: [a, starts, ends, axes], gy }) => {
    const [start, end, axis] = [starts, ends, axes].map((v) => Number((v!.constant?.data as BigInt64Array | undefined)?.[0] ?? NaN));
    if ([start, end, axis].some((n) => Number.isNaN(n))) throw new GraphBuildError('Slice: gradient needs constant starts, ends and axes');
    const cut = sliceCutOf(a!, axis!, start!, end!);
    return [padAxis(gy, axis!, cut.before, cut.after, a!.shape), null, null, null];
  },
  // Concat: each operand's gradient is its slice of gy.
  Concat: ({ node, x, gy }) => {
    const axis = intAttr(node, 'axis');
    let at = 0;
    return x.map((v) => {
      const size = v.shape[axis];
      if (typeof size !== 'number') throw new GraphBuildError(`Concat: gradient needs static sizes along axis ${axis}, got ${v}`);
      const g = slice(gy, axis, at, at + size);
      at += size;
      return g;
    });
  },
  ReduceSum: ({ node, x: [a], gy }) => [spreadOverReduced(gy, a!, node), null],
  ReduceMean: ({ node, x: [a], gy }) => {
    const count = dimProduct(reduceAxes(node).map((ax) => a!.shape[ax < 0 ? ax + a!.rank : ax]!));
    if (typeof count !== 'number') throw new GraphBuildError(`ReduceMean: gradient over symbolic dims ${count} is not supported`);
    return [mul(spreadOverReduced(gy, a!, node), scalarLike(gy, 1 / count))];
  },
  // y = softmax(x): dx = y * (dy - sum(dy * y))
  Softmax: ({ node, y: [s], gy }) => {
    const axis = intAttr(node, 'axis');
    return [mul(s!, sub(gy, reduceSum(mul(gy, s!), [axis], true)))];
  },
  // y = log_softmax(x): dx = dy - softmax(x) * sum(dy)
  LogSoftmax: ({ node, y: [ls], gy }) => {
    const axis = intAttr(node, 'axis');
    return [sub(gy, mul(exp(ls!), reduceSum(gy, [axis], true)))];
  },
  MatMul: ({ x: [a, b], gy }) => matmulGrad(a!, b!, gy),
  // Gather along axis 0 (embedding lookup, position-bias table): each looked-up row's gradient
  // goes back to its row, as a RowGradient (no dense zero table per lookup).
  Gather: ({ node, x: [table, idx], gy }) => {
    if (intAttr(node, 'axis') !== 0) throw new GraphBuildError('Gather: gradient only along axis 0');
    if (table!.rank !== 2) throw new GraphBuildError(`Gather: gradient needs a 2-D table, got ${table}`);
    const n = dimProduct(idx!.shape);
    return [{ kind: 'rows', indices: reshape(idx!, [n]), rows: reshape(gy, [n, table!.shape[1]!]) }, null];
  },
  GatherElements: ({ node, x: [data, idx], gy }) => [scatterElementsAdd(zerosLike(data!), idx!, gy, intAttr(node, 'axis')), null],
};

/** sliceCut for a Slice node's constant end (MAX_SAFE_INTEGER or INT64_MAX: to the end). */
function sliceCutOf(x: Value, axis: number, start: number, end: number): { before: number; after: number } {
  return sliceCut(x, axis, start, end >= Number.MAX_SAFE_INTEGER ? undefined : end);
}

/**
 * Sum row gradients into a dense zero table: the formulation `gradients()` returns. ScatterElements
 * (indices repeated along the row) rather than ScatterND: ORT's CPU ScatterND splits duplicate
 * indices across threads without ordering (a race), while ScatterElements adds them in index order.
 */
export function denseRows(g: RowGradient, table: Value): Value {
  const idx = g.indices.dtype === 'int64' ? g.indices : cast(g.indices, 'int64');
  return scatterElementsAdd(zerosLike(table), expandLike(unsqueeze(idx, [1]), g.rows), g.rows, 0);
}

/**
 * C = A @ B with batch broadcasting: dA = dC @ B^T, dB = A^T @ dC, summed over broadcast batch
 * dims. When B is a matrix (a Linear weight), A's batch dims fold into rows, so dB is one GEMM
 * instead of a batched GEMM plus a reduction. When B is itself W^T (nn.Linear stores W as
 * [out, in]), dB is built as (dC^T A)^T: the Transpose rule's transpose then cancels in the
 * builder, leaving dW = dC^T A computed directly in W's layout, with no weight-sized Transpose
 * (ORT folds the activation-side transpose into the GEMM). dA = dC @ (W^T)^T = dC @ W likewise.
 */
function matmulGrad(a: Value, b: Value, gy: Value): (Value | null)[] {
  const swapLast = (v: Value) => transpose(v, [...v.shape.keys()].map((i) => (i < v.rank - 2 ? i : v.rank * 2 - 3 - i)));
  const ga = unbroadcast(matmul(gy, swapLast(b)), a);
  if (b.rank === 2) {
    const rows = dimProduct(a.shape.slice(0, -1));
    const a2 = a.rank === 2 ? a : reshape(a, [rows, a.shape[a.rank - 1]!]);
    const g2 = gy.rank === 2 ? gy : reshape(gy, [rows, gy.shape[gy.rank - 1]!]);
    const storedTransposed = b.producer?.op === 'Transpose';
    return [ga, storedTransposed ? transpose(matmul(transpose(g2, [1, 0]), a2), [1, 0]) : matmul(transpose(a2, [1, 0]), g2)];
  }
  return [ga, unbroadcast(matmul(swapLast(a), gy), b)];
}
