import test from 'node:test';
import assert from 'node:assert/strict';
import { gradients } from '../../../shared/autodiff/backward.js';
import { KpCoordError, MissingGradientError } from '../../../shared/errors.js';
import { Graph, type Value } from '../../../shared/onnx/graph.js';
import { add, exp, matmul, mul, pow, reduceSum, softmax, tanh } from '../../../shared/onnx/ops.js';
import { serializeGraph } from '../../../shared/onnx/serialize.js';
import { ModelProto } from '../../../proto/gen/onnx/onnx.js';
import { rngStream } from '../../../shared/random.js';
import { gradTest, unaryCase } from '../../helpers/gradcheck.js';
import { runGraph, runSession, sessionFor } from '../../helpers/ort.js';

// The backward walk itself: missing rules, fan-out, pruning, several targets, and the
// upstream-gradient (seed) contract that block-wise execution relies on.

/** An op with no gradient rule, emitted raw (the DSL has no Sinh). */
const sinh = (x: Value): Value => x.graph.emit('Sinh', [x], {}, [{ dtype: x.dtype, shape: x.shape }])[0]!;

function normal(count: number, key: number): Float64Array {
  const out = new Float64Array(count);
  rngStream(7, key).fillNormal(out);
  return out;
}

/** max |a - b| / max |b|: the agreement of two computations of the same tensor. */
function relativeDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let err = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return err / scale;
}

test('an op without a rule on the path throws MissingGradientError naming the op', () => {
  const g = new Graph();
  const x = g.input('x', 'float64', [2, 3]);
  const y = reduceSum(tanh(sinh(x)), [0, 1], false);
  assert.throws(() => gradients([{ value: y }], [x]), (e: unknown) => e instanceof MissingGradientError && /\bSinh\b/.test(e.message));
});

// The default seed is 1, which only fits a scalar target; a tensor target needs a seed of its
// shape, and the error should say that (not blame a gradient rule).
test('a non-scalar target without a seed is refused, asking for a seed', () => {
  const g = new Graph();
  const x = g.input('x', 'float64', [2, 3]);
  const y = tanh(x);
  assert.throws(() => gradients([{ value: y }], [x]), (e: unknown) => e instanceof KpCoordError && /seed/.test(e.message) && e.message.includes(y.name));
});

// x feeds Mul, Tanh and Exp: its gradient is the sum of three contributions.
gradTest('fan-out: a value used three times', unaryCase((x) => add(mul(x, tanh(x)), exp(x))));
// The same value twice in one node: x * x.
gradTest('fan-out: both operands of one node', unaryCase((x) => mul(x, x)));

/** Gradient nodes that `gradients` appends, and those of them left after serialisation drops dead ones. */
function gradientNodeCounts(build: (g: Graph, x: Value) => Value): { appended: number; serialized: number } {
  const g = new Graph();
  const x = g.input('x', 'float64', [2, 3]);
  const y = build(g, x);
  const forward = new Set(g.nodes.map((n) => `n${n.id}_${n.op}`));
  const [gx] = gradients([{ value: y }], [x]);
  g.output('gx', gx!);
  const serialized = ModelProto.decode(serializeGraph(g)).graph!.node.filter((n) => !forward.has(n.name)).length;
  return { appended: g.nodes.length - forward.size, serialized };
}

test('pruning: a branch that does not reach the target gets no gradient nodes', () => {
  const plain = gradientNodeCounts((_, x) => reduceSum(tanh(x), [0, 1], false));
  // The dead branch even holds an op without a rule: it must never be visited.
  const withDeadBranch = gradientNodeCounts((_, x) => {
    reduceSum(mul(exp(sinh(x)), x), [1], true);
    return reduceSum(tanh(x), [0, 1], false);
  });
  assert.deepEqual(withDeadBranch, plain);
});

test('pruning: a branch that reaches the target but not from wrt gets no gradient nodes', () => {
  const viaInput = gradientNodeCounts((g, x) => reduceSum(mul(tanh(x), g.input('c', 'float64', [2, 3])), [0, 1], false));
  // exp(sinh(c)) has no rule for Sinh, and needs none: nothing in it depends on x.
  const viaBranch = gradientNodeCounts((g, x) => reduceSum(mul(tanh(x), exp(sinh(g.input('c', 'float64', [2, 3])))), [0, 1], false));
  assert.deepEqual(viaBranch, viaInput);
});

// z is differentiated but does not reach y: its gradient must be exact zeros of its shape.
gradTest('pruning: a wrt input that does not reach y gets zeros', (g) => {
  const x = g.input('x', 'float64', [2, 3]);
  const z = g.input('z', 'float64', [4, 1]);
  return { y: tanh(x), wrt: [x, z] };
});

test('a wrt input that does not reach the target gets a zeros tensor of its shape', async () => {
  const g = new Graph();
  const x = g.input('x', 'float64', [2, 3]);
  const z = g.input('z', 'float64', [4, 1]);
  const [, gz] = gradients([{ value: reduceSum(tanh(x), [0, 1], false) }], [x, z]);
  assert.deepEqual(gz!.shape, [4, 1]);
  g.output('gz', gz!);
  const out = await runGraph(g, { x: normal(6, 1), z: normal(4, 2) });
  assert.deepEqual(out.gz, new Float64Array(4));
});

// Two targets with their own seeds must give the gradient of sum(y1 * s1) + sum(y2 * s2), also
// when one target feeds the other (a block whose output is also used inside it).
test('several targets: gradients add up', async () => {
  const g = new Graph();
  const x = g.input('x', 'float64', [2, 3]);
  const s1 = g.input('s1', 'float64', [2, 3]);
  const s2 = g.input('s2', 'float64', [3]);
  const y1 = tanh(x);
  const y2 = reduceSum(mul(y1, x), [0], false);
  const [separate] = gradients([{ value: y1, seed: s1 }, { value: y2, seed: s2 }], [x]);
  const loss = add(reduceSum(mul(y1, s1), [0, 1], false), reduceSum(mul(y2, s2), [0], false));
  const [joint] = gradients([{ value: loss }], [x]);
  g.output('separate', separate!);
  g.output('joint', joint!);
  const out = await runGraph(g, { x: normal(6, 1), s1: normal(6, 2), s2: normal(3, 3) });
  // Same float64 operations, summed in another order: agreement to a few ulps.
  assert.ok(relativeDifference(out.separate as Float64Array, out.joint as Float64Array) < 1e-14);
});

// [Note: block-wise] Split y = f(g(x, w1), w2) at u = g(x, w1). The outer block gives dy/du and
// dy/dw2; feeding dy/du as the seed of the inner block gives dy/dx and dy/dw1. Both must equal
// differentiating the whole chain at once.
test('block-wise: seeding the inner block with the outer gradient equals the whole chain', async (t) => {
  const shapes = { x: [2, 3, 4], w1: [4, 5], u: [2, 3, 5], w2: [5, 3] } as const;
  const inner = (x: Value, w1: Value) => tanh(matmul(x, w1));
  const outer = (u: Value, w2: Value) => reduceSum(pow(softmax(matmul(u, w2), -1), u.graph.scalar(2, 'float64')), [0, 1, 2], false);
  const data = { x: normal(24, 1), w1: normal(20, 2), w2: normal(15, 3) };

  const whole = new Graph('whole');
  {
    const x = whole.input('x', 'float64', shapes.x);
    const w1 = whole.input('w1', 'float64', shapes.w1);
    const w2 = whole.input('w2', 'float64', shapes.w2);
    const [gx, gw1, gw2] = gradients([{ value: outer(inner(x, w1), w2) }], [x, w1, w2]);
    whole.output('gx', gx!);
    whole.output('gw1', gw1!);
    whole.output('gw2', gw2!);
  }
  const innerBlock = new Graph('inner');
  {
    const x = innerBlock.input('x', 'float64', shapes.x);
    const w1 = innerBlock.input('w1', 'float64', shapes.w1);
    const seed = innerBlock.input('seed', 'float64', shapes.u);
    const u = inner(x, w1);
    const [gx, gw1] = gradients([{ value: u, seed }], [x, w1]);
    innerBlock.output('u', u);
    innerBlock.output('gx', gx!);
    innerBlock.output('gw1', gw1!);
  }
  const outerBlock = new Graph('outer');
  {
    const u = outerBlock.input('u', 'float64', shapes.u);
    const w2 = outerBlock.input('w2', 'float64', shapes.w2);
    const [gu, gw2] = gradients([{ value: outer(u, w2) }], [u, w2]);
    outerBlock.output('gu', gu!);
    outerBlock.output('gw2', gw2!);
  }

  const expected = await runGraph(whole, data);
  const innerSession = await sessionFor(innerBlock);
  try {
    // Forward of the inner block (its seed does not affect u), then the outer block, then the
    // inner block's backward with the outer block's gradient as the seed.
    const forward = await runSession(innerSession, innerBlock, { x: data.x, w1: data.w1, seed: new Float64Array(30) }, { fetches: ['u'] });
    const outerOut = await runGraph(outerBlock, { u: forward.u!, w2: data.w2 });
    const backward = await runSession(innerSession, innerBlock, { x: data.x, w1: data.w1, seed: outerOut.gu! });
    // The same float64 operations in both computations, only grouped differently: a few ulps.
    for (const [name, got] of [['gx', backward.gx], ['gw1', backward.gw1], ['gw2', outerOut.gw2]] as const) {
      const diff = relativeDifference(got as Float64Array, expected[name] as Float64Array);
      assert.ok(diff < 1e-13, `${name}: relative difference ${diff}`);
      t.diagnostic(`${name}: relative difference ${diff.toExponential(2)}`);
    }
  } finally {
    await innerSession.release();
  }
});
