import test from 'node:test';
import assert from 'node:assert/strict';
import { gradients } from '../../../shared/autodiff/backward.js';
import { GraphBuildError } from '../../../shared/errors.js';
import { Graph } from '../../../shared/onnx/graph.js';
import {
  add, exp, gather, matmul, mul, reduceMean, reduceSum, reshape, softmax, squeeze, tanh, transpose,
} from '../../../shared/onnx/ops.js';
import { serializeGraph } from '../../../shared/onnx/serialize.js';
import { ModelProto } from '../../../proto/gen/onnx/onnx.js';
import { runGraph, runSessionTensors, sessionFor } from '../../helpers/ort.js';

// The DSL checks operands when an op is added (errors name the op and the shapes), tracks
// symbolic dims so one session serves every batch size, and serialises only what the outputs need.

/** Asserts that `build` throws a GraphBuildError whose message matches every pattern. */
function throwsBuildError(build: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(build, (e: unknown) => {
    assert.ok(e instanceof GraphBuildError, `expected GraphBuildError, got ${String(e)}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

test('MatMul with mismatched inner dims names the op and both shapes', () => {
  const g = new Graph();
  const a = g.input('a', 'float64', [2, 3]);
  const b = g.input('b', 'float64', [4, 5]);
  throwsBuildError(() => matmul(a, b), /^MatMul:/, /inner dims differ \(3 vs 4\)/, /a: float64\[2, 3\]/, /b: float64\[4, 5\]/);
});

test('Add of shapes that do not broadcast names the op and the shapes', () => {
  const g = new Graph();
  const a = g.input('a', 'float64', [2, 3]);
  const b = g.input('b', 'float64', [4]);
  throwsBuildError(() => add(a, b), /^Add: shapes \[2, 3\] and \[4\] do not broadcast/);
  throwsBuildError(() => add(a, g.input('c', 'float64', [4, 3, 2])), /^Add: shapes \[2, 3\] and \[4, 3, 2\] do not broadcast \(dim 1: 2 vs 3\)/);
});

test('Transpose with a bad perm names the perm, the rank and the operand', () => {
  const g = new Graph();
  const x = g.input('x', 'float64', [2, 3]);
  throwsBuildError(() => transpose(x, [0, 0]), /^Transpose: perm \[0, 0\] is not a permutation of rank 2/, /x: float64\[2, 3\]/);
  throwsBuildError(() => transpose(x, [1, 0, 2]), /^Transpose: perm \[1, 0, 2\]/);
});

test('Reshape to a different element count names both', () => {
  const g = new Graph();
  const x = g.input('x', 'float64', [2, 3]);
  throwsBuildError(() => reshape(x, [4, 2]), /^Reshape: cannot reshape 6 elements to \[4, 2\]/, /x: float64\[2, 3\]/);
  const s = g.input('s', 'float64', ['batch', 'seq', 4]);
  throwsBuildError(() => reshape(s, ['seq', 'batch', 4]), /^Reshape: target \[seq, batch, 4\] has two dims to infer/);
});

test('Squeeze of a dim that is not 1 names the dim and its size', () => {
  const g = new Graph();
  const x = g.input('x', 'float64', [2, 1, 3]);
  throwsBuildError(() => squeeze(x, [2]), /^Squeeze: dim 2 is 3, not 1/, /x: float64\[2, 1, 3\]/);
});

test('operands of different dtypes are refused', () => {
  const g = new Graph();
  const a = g.input('a', 'float64', [2, 3]);
  const b = g.input('b', 'float32', [2, 3]);
  throwsBuildError(() => add(a, b), /^Add: dtype mismatch float64 vs float32/, /a: float64\[2, 3\]/, /b: float32\[2, 3\]/);
  throwsBuildError(() => matmul(a, g.input('w', 'float32', [3, 2])), /^MatMul: dtype mismatch float64 vs float32/);
  throwsBuildError(() => gather(a, g.input('ids', 'float64', [2])), /^Gather: indices must be int32 or int64/);
});

test('an operand from another graph is refused, naming the op and the operand', () => {
  const g1 = new Graph('one');
  const g2 = new Graph('two');
  const a = g1.input('a', 'float64', [2]);
  const b = g2.input('b', 'float64', [2]);
  throwsBuildError(() => add(a, b), /^Add: operand b belongs to another graph/);
});

test('an axis out of range and a name used twice are refused', () => {
  const g = new Graph();
  const x = g.input('x', 'float64', [2, 3]);
  throwsBuildError(() => softmax(x, 2), /^Softmax: axis 2 out of range for rank 2/);
  throwsBuildError(() => g.input('x', 'float64', [1]), /value name x used twice/);
  g.output('y', x);
  throwsBuildError(() => g.output('y', x), /output y declared twice/);
  throwsBuildError(() => serializeGraph(new Graph('empty')), /graph empty: no outputs declared/);
});

// ONNX reads an empty axes list as "reduce every axis" (noop_with_empty_axes = 0), so the builder's
// shape for reduce(x, []) must be ORT's, or the builder must refuse the call.
for (const [name, reduce] of [['ReduceSum', reduceSum], ['ReduceMean', reduceMean]] as const) {
  test(`${name} over an empty axes list: the tracked shape is the run-time shape, or the call is refused`, async () => {
    const g = new Graph();
    const x = g.input('x', 'float64', [2, 3]);
    let y;
    try {
      y = reduce(x, [], true);
    } catch (e) {
      assert.ok(e instanceof GraphBuildError, String(e));
      return;
    }
    g.output('y', y);
    const session = await sessionFor(g);
    try {
      const out = await runSessionTensors(session, g, { x: Float64Array.from([1, 2, 3, 4, 5, 6]) });
      assert.deepEqual(out.y!.dims, y.shape, `${name}(x, []) is tracked as [${y.shape.join(', ')}]`);
    } finally {
      await session.release();
    }
  });
}

/** Row-major [m, k] x [k, n] in plain float64 loops (the reference for the symbolic-shape test). */
function matmulRef(a: Float64Array, b: Float64Array, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) out[i * n + j]! += a[i * k + p]! * b[p * n + j]!;
  return out;
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  // Float64 on both sides, summed in different orders: agreement to ~1e-15 of the largest entry.
  assert.equal(got.length, want.length, `${what}: length`);
  const scale = Math.max(...Array.from(want, Math.abs));
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i]! - want[i]!) <= 1e-12 * scale, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
  }
}

test('symbolic dims: one session runs batch 1 and batch 3, forward and gradient', async () => {
  // y = softmax(tanh(x @ w)) over the last axis, reshaped through a flattened [batch*seq, 3] and
  // back; loss = sum(y * c); the gradient wrt w goes through the Linear-case rule, which folds
  // the batch and seq dims into rows with a symbolic reshape.
  const g = new Graph();
  const x = g.input('x', 'float64', ['batch', 2, 4]);
  const w = g.input('w', 'float64', [4, 3]);
  const c = g.input('c', 'float64', [3]);
  const h = tanh(matmul(x, w));
  const flat = reshape(h, ['batch*2', 3]);
  assert.deepEqual(flat.shape, ['batch*2', 3]);
  const y = reshape(softmax(flat, -1), ['batch', 2, 3]);
  const loss = reduceSum(mul(h, c), [0, 1, 2], false);
  const [gw] = gradients([{ value: loss }], [w]);
  g.output('y', y);
  g.output('gw', gw!);
  assert.deepEqual(y.shape, ['batch', 2, 3]);

  const wData = Float64Array.from({ length: 12 }, (_, i) => Math.sin(i + 1));
  const cData = Float64Array.from([0.5, -1, 2]);
  const session = await sessionFor(g);
  try {
    for (const batch of [1, 3]) {
      const rows = batch * 2;
      const xData = Float64Array.from({ length: rows * 4 }, (_, i) => Math.cos(i * 0.7));
      const out = await runSessionTensors(session, g, { x: xData, w: wData, c: cData }, { dims: { batch } });
      assert.deepEqual(out.y!.dims, [batch, 2, 3]);
      assert.deepEqual(out.gw!.dims, [4, 3]);

      const t = matmulRef(xData, wData, rows, 4, 3).map(Math.tanh);
      const soft = new Float64Array(rows * 3);
      for (let r = 0; r < rows; r++) {
        const e = [0, 1, 2].map((j) => Math.exp(t[r * 3 + j]!));
        const s = e[0]! + e[1]! + e[2]!;
        for (let j = 0; j < 3; j++) soft[r * 3 + j] = e[j]! / s;
      }
      assertClose(out.y!.data as Float64Array, soft, `y (batch ${batch})`);
      // dL/dw = x^T (c * (1 - t^2)), x as [rows, 4].
      const dh = t.map((v, i) => cData[i % 3]! * (1 - v * v));
      const xT = new Float64Array(4 * rows);
      for (let r = 0; r < rows; r++) for (let k = 0; k < 4; k++) xT[k * rows + r] = xData[r * 4 + k]!;
      assertClose(out.gw!.data as Float64Array, matmulRef(xT, dh, 4, rows, 3), `dL/dw (batch ${batch})`);
    }
  } finally {
    await session.release();
  }
});

test('serialisation keeps only the nodes and constants the outputs need, and every input', async () => {
  const g = new Graph();
  const x = g.input('x', 'float64', [3]);
  g.input('unused', 'float64', [2]);
  const live = add(tanh(x), g.scalar(1, 'float64'));
  mul(exp(x), g.constant(Float64Array.from([7, 8, 9]), [3], 'dead_weights'));
  g.output('y', live);

  const model = ModelProto.decode(serializeGraph(g)).graph!;
  assert.deepEqual(model.node.map((n) => n.opType), ['Tanh', 'Add']);
  assert.deepEqual(model.initializer.map((t) => t.dims), [[]]);
  assert.deepEqual(model.input.map((i) => i.name), ['x', 'unused']);
  assert.deepEqual(model.output.map((o) => o.name), ['y']);

  const out = await runGraph(g, { x: Float64Array.from([0, 1, -2]), unused: new Float64Array(2) });
  assertClose(out.y as Float64Array, [0, 1, -2].map((v) => Math.tanh(v) + 1), 'y');
});

test('outputs that are inputs, or one value under two names, are carried by Identity', async () => {
  const g = new Graph();
  const x = g.input('x', 'float64', [2]);
  const y = tanh(x);
  g.output('echo', x);
  g.output('y', y);
  g.output('y_again', y);
  const model = ModelProto.decode(serializeGraph(g)).graph!;
  assert.deepEqual(model.node.map((n) => `${n.opType}:${n.input.join(',')}->${n.output.join(',')}`), ['Tanh:x->y', 'Identity:x->echo', 'Identity:y->y_again']);
  const out = await runGraph(g, { x: Float64Array.from([0.5, -1]) });
  assert.deepEqual(out.echo, Float64Array.from([0.5, -1]));
  assert.deepEqual(out.y_again, out.y);
});

test('scalar constants are shared per dtype and value', () => {
  const g = new Graph();
  const x = g.input('x', 'float64', [2]);
  const two = g.scalar(2, 'float64');
  assert.equal(g.scalar(2, 'float64'), two);
  assert.notEqual(g.scalar(2, 'float32'), two);
  assert.notEqual(g.scalar(-0, 'float64'), g.scalar(0, 'float64'));
  assert.equal(g.scalar(-0, 'float64'), g.scalar(-0, 'float64'));
  assert.deepEqual(two.shape, []);

  // Three uses of 2 and one of 3 serialise to two initializers.
  g.output('y', add(mul(mul(x, two), g.scalar(2, 'float64')), add(g.scalar(2, 'float64'), g.scalar(3, 'float64'))));
  const model = ModelProto.decode(serializeGraph(g)).graph!;
  const values = model.initializer.map((t) => Buffer.from(t.rawData).readDoubleLE(0)).sort();
  assert.deepEqual(values, [2, 3]);
});

test('a transpose of a transpose is one transpose of the original, and the identity is no node', async () => {
  const g = new Graph();
  const x = g.input('x', 'float64', [2, 3, 4]);
  const once = transpose(x, [1, 2, 0]); // [3, 4, 2]
  const twice = transpose(once, [2, 0, 1]); // back to [2, 3, 4]
  assert.equal(twice, x, 'inverse permutations cancel to the original value');
  const composed = transpose(once, [1, 0, 2]); // [4, 3, 2] = x's axes [2, 1, 0]
  assert.deepEqual(composed.shape, [4, 3, 2]);
  assert.equal(composed.producer!.inputs[0], x, 'built from x directly, not from the inner transpose');
  assert.deepEqual((composed.producer!.attrs.perm as { ints: number[] }).ints, [2, 1, 0]);
  assert.equal(transpose(x, [0, 1, 2]), x);
  // Same values as running the two transposes one after the other.
  g.output('y', composed);
  const data = Float64Array.from({ length: 24 }, (_, i) => i);
  const out = await runGraph(g, { x: data });
  const expected: number[] = [];
  for (let k = 0; k < 4; k++) for (let j = 0; j < 3; j++) for (let i = 0; i < 2; i++) expected.push(data[i * 12 + j * 4 + k]!);
  assert.deepEqual(Array.from(out.y as Float64Array), expected);
});

test('a Linear weight gets its gradient in its own [out, in] layout: dY^T X, no weight-sized Transpose', () => {
  const g = new Graph();
  const x = g.input('x', 'float64', ['batch', 5, 4]);
  const w = g.input('w', 'float64', [3, 4]); // nn.Linear(4, 3).weight
  const y = matmul(x, transpose(w, [1, 0]));
  const loss = reduceSum(mul(y, y), [0, 1, 2], false);
  const [gw, gx] = gradients([{ value: loss }], [w, x]);
  assert.equal(gw!.producer!.op, 'MatMul', `dW comes from a ${gw!.producer!.op}`);
  const [left, right] = gw!.producer!.inputs;
  assert.equal(left!.producer!.op, 'Transpose', 'the left operand is dY^T (an activation-side transpose, fused by ORT)');
  assert.deepEqual(left!.shape, [3, '5*batch']);
  assert.deepEqual(right!.shape, ['5*batch', 4]);
  assert.equal(gx!.producer!.op, 'MatMul');
  assert.equal(gx!.producer!.inputs[1], w, 'dX = dY W reads the weight as stored');
  g.output('gw', gw!);
  g.output('gx', gx!);
  const weightSized = g.nodes.filter((n) => n.op === 'Transpose' && n.inputs[0] === w);
  assert.equal(weightSized.length, 1, 'only the forward W^T (which ORT fuses into the GEMM) transposes the weight');
});
