import test from 'node:test';
import assert from 'node:assert/strict';
import { gradients } from '../../../shared/autodiff/backward.js';
import { Graph } from '../../../shared/onnx/graph.js';
import {
  cast, concat, expandLike, mul, reduceMean, reduceSum, reshape, slice, squeeze, tanh, transpose, unsqueeze, where,
} from '../../../shared/onnx/ops.js';
import { gradTest, unaryCase, type GradCheckCase } from '../../helpers/gradcheck.js';
import { runGraph } from '../../helpers/ort.js';

// Finite-difference checks of the rules that move, copy or reduce elements (tolerances: see
// test/helpers/gradcheck.ts). Shapes are chosen so that a wrong rule cannot pass by symmetry:
// non-square transposes plus a cube with a non-self-inverse perm, reductions over several axes.

gradTest('Cast float64 -> float64', unaryCase((x) => cast(x, 'float64')));

// Float32 cannot be checked by finite differences at h = 1e-5 (its eps is 1.2e-7), and Cast's
// gradient is exact anyway: the seed cast back to the input's dtype. So compare bit for bit.
test('Cast float32 -> float64: the gradient is the seed rounded to float32', async () => {
  const g = new Graph();
  const x = g.input('x', 'float32', [2, 3]);
  const seed = g.input('seed', 'float64', [2, 3]);
  const [gx] = gradients([{ value: cast(x, 'float64'), seed }], [x]);
  assert.equal(gx!.dtype, 'float32');
  g.output('gx', gx!);
  const w = Float64Array.from([0.1, -0.2, 1 / 3, 1e-9, -7.25, 2 ** 30 + 1]);
  const out = await runGraph(g, { x: new Float32Array(6), seed: w });
  assert.deepEqual(out.gx, Float32Array.from(w));
});

test('Cast float64 -> float32: the gradient is the float32 seed widened to float64', async () => {
  const g = new Graph();
  const x = g.input('x', 'float64', [3]);
  const seed = g.input('seed', 'float32', [3]);
  const [gx] = gradients([{ value: cast(x, 'float32'), seed }], [x]);
  assert.equal(gx!.dtype, 'float64');
  g.output('gx', gx!);
  const w = Float32Array.from([0.5, -1.25, 3.1]);
  const out = await runGraph(g, { x: new Float64Array(3), seed: w });
  assert.deepEqual(out.gx, Float64Array.from(w));
});

/** Where(cond, a, b) with a fixed mask; any of the three may be broadcast against the others. */
function whereCase(shapeCond: readonly number[], shapeA: readonly number[], shapeB: readonly number[]) {
  const mask = [1, 0, 0, 1, 1, 0];
  return (g: Graph): GradCheckCase => {
    const cond = g.input('cond', 'bool', shapeCond);
    const a = g.input('a', 'float64', shapeA);
    const b = g.input('b', 'float64', shapeB);
    const data = Uint8Array.from(mask.slice(0, shapeCond.reduce((p, d) => p * d, 1)));
    return { y: where(cond, a, b), wrt: [a, b], fixed: [{ value: cond, data }] };
  };
}
gradTest('Where [2,3] [2,3] [2,3]', whereCase([2, 3], [2, 3], [2, 3]));
gradTest('Where [2,3] [2,3] [3] (b broadcast)', whereCase([2, 3], [2, 3], [3]));
gradTest('Where [2,3] [2,1] scalar (a and b broadcast)', whereCase([2, 3], [2, 1], []));
gradTest('Where [3] [2,1] [2,3] (condition broadcast too)', whereCase([3], [2, 1], [2, 3]));

function expandCase(shape: readonly number[], to: readonly number[]) {
  return (g: Graph): GradCheckCase => {
    const x = g.input('x', 'float64', shape);
    const like = g.input('like', 'float64', to);
    return { y: expandLike(x, like), wrt: [x], fixed: [{ value: like, data: new Float64Array(to.reduce((p, d) => p * d, 1)) }] };
  };
}
gradTest('Expand [3,1] to [2,3,4]', expandCase([3, 1], [2, 3, 4]));
gradTest('Expand scalar to [2,3]', expandCase([], [2, 3]));

gradTest('Reshape [2,3,4] to [6,4]', unaryCase((x) => reshape(x, [6, 4]), [2, 3, 4]));
gradTest('Reshape [2,3,4] to [4,3,2]', unaryCase((x) => reshape(x, [4, 3, 2]), [2, 3, 4]));
gradTest('Unsqueeze [2,3] at [0,2]', unaryCase((x) => unsqueeze(x, [0, 2]), [2, 3]));
gradTest('Unsqueeze [2,3] at [-1]', unaryCase((x) => unsqueeze(x, [-1]), [2, 3]));
gradTest('Squeeze [2,1,3,1] at [1,3]', unaryCase((x) => squeeze(x, [1, 3]), [2, 1, 3, 1]));
gradTest('Transpose [2,3] perm [1,0]', unaryCase((x) => transpose(x, [1, 0]), [2, 3]));
gradTest('Transpose [2,3,4] perm [2,0,1]', unaryCase((x) => transpose(x, [2, 0, 1]), [2, 3, 4]));
// A cube: perm and its inverse give the same shape, so only the values can tell them apart.
gradTest('Transpose [3,3,3] perm [1,2,0] (not self-inverse)', unaryCase((x) => transpose(x, [1, 2, 0]), [3, 3, 3]));

const reductions: readonly [string, readonly number[], boolean][] = [
  ['axis 1 keepdims 1', [1], true],
  ['axis -1 keepdims 0', [-1], false],
  ['axes [0,2] keepdims 0', [0, 2], false],
  ['axes [0,2] keepdims 1', [0, 2], true],
  ['all axes keepdims 0 (scalar)', [0, 1, 2], false],
];
for (const [label, axes, keep] of reductions) {
  gradTest(`ReduceSum ${label}`, unaryCase((x) => reduceSum(x, axes, keep), [2, 3, 4]));
  gradTest(`ReduceMean ${label}`, unaryCase((x) => reduceMean(x, axes, keep), [2, 3, 4]));
}
// A reduction feeding a nonlinearity, so the spread-out gradient is weighted per element.
gradTest('ReduceMean then Mul by its input', unaryCase((x) => mul(x, tanh(reduceMean(x, [1], true))), [2, 3, 4]));

// Slice (qkv split, rotary halves, the causal shift): a middle window, a tail to the end, and a
// negative end; Concat (rotate_half, rotary + pass-through dims) of unequal parts.
gradTest('Slice [2,3,7] axis -1 [2,5)', unaryCase((x) => slice(x, -1, 2, 5), [2, 3, 7]));
gradTest('Slice [4,3] axis 0 from 1 to the end', unaryCase((x) => slice(x, 0, 1), [4, 3]));
gradTest('Slice [2,5,3] axis 1 dropping the last (end -1)', unaryCase((x) => slice(x, 1, 0, -1), [2, 5, 3]));
gradTest('Concat of [2,3,2], [2,3,4] and [2,3,1] on the last axis', (g) => {
  const xs = [2, 4, 1].map((n, i) => g.input(`x${i}`, 'float64', [2, 3, n]));
  return { y: concat(xs, -1), wrt: xs };
});
