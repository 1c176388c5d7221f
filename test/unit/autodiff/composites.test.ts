import {
  add, equal, gatherElements, logSoftmax, matmul, mul, neg, pow, reciprocal, reduceMean, reduceSum, softmax, sqrt,
  tanh, transpose, where,
} from '../../../shared/onnx/ops.js';
import type { Graph, Value } from '../../../shared/onnx/graph.js';
import { draws, gradTest, type GradCheckCase } from '../../helpers/gradcheck.js';

// The model's building blocks, composed from primitive ops (so they need no rule of their own),
// checked end to end against finite differences (tolerances: see test/helpers/gradcheck.ts).

const c = (x: Value, value: number): Value => x.graph.scalar(value, x.dtype);

/** T5 RMSNorm: x * rsqrt(mean(x^2) + eps) * w, no mean subtraction, no bias. */
function rmsNorm(x: Value, w: Value, eps = 1e-6): Value {
  const variance = reduceMean(pow(x, c(x, 2)), [-1], true);
  return mul(mul(x, reciprocal(sqrt(add(variance, c(x, eps))))), w);
}

/** gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
function geluNew(x: Value): Value {
  const inner = mul(c(x, Math.sqrt(2 / Math.PI)), add(x, mul(c(x, 0.044715), pow(x, c(x, 3)))));
  return mul(mul(c(x, 0.5), x), add(c(x, 1), tanh(inner)));
}

gradTest('RMSNorm x * rsqrt(mean(x^2) + eps) * w', (g) => {
  const x = g.input('x', 'float64', [2, 3, 4]);
  const w = g.input('w', 'float64', [4]);
  return { y: rmsNorm(x, w), wrt: [x, w] };
});

// Inputs of scale 2 reach both the tanh's curved middle and its flat tails.
gradTest('gelu_new', (g) => {
  const x = g.input('x', 'float64', [3, 5]);
  return { y: geluNew(x), wrt: [{ value: x, draw: (rng) => 2 * rng.normal() }] };
});

// T5 v1.1 gated-GELU FFN: (gelu_new(x wi_0) * (x wi_1)) wo, Linear matmuls on [B,S,K] x [K,N].
gradTest('gated-GELU feed-forward', (g) => {
  const x = g.input('x', 'float64', [2, 3, 4]);
  const wi0 = g.input('wi_0', 'float64', [4, 6]);
  const wi1 = g.input('wi_1', 'float64', [4, 6]);
  const wo = g.input('wo', 'float64', [6, 4]);
  return { y: matmul(mul(geluNew(matmul(x, wi0)), matmul(x, wi1)), wo), wrt: [x, wi0, wi1, wo] };
});

// softmax(q k^T + bias) v with [B,H,S,D] heads and a position bias broadcast over the batch.
gradTest('softmax attention', (g) => {
  const q = g.input('q', 'float64', [2, 2, 3, 4]);
  const k = g.input('k', 'float64', [2, 2, 5, 4]);
  const v = g.input('v', 'float64', [2, 2, 5, 4]);
  const bias = g.input('bias', 'float64', [1, 2, 3, 5]);
  const scores = add(matmul(q, transpose(k, [0, 1, 3, 2])), bias);
  return { y: matmul(softmax(scores, -1), v), wrt: [q, k, v, bias] };
});

/**
 * Summed token cross-entropy as the loss graph computes it: labels -100 are ignored (masked out,
 * and replaced by a valid index so GatherElements stays in range). Returns a scalar.
 */
function crossEntropyCase(g: Graph): GradCheckCase {
  const logits = g.input('logits', 'float64', [2, 3, 5]);
  const labels = g.input('labels', 'int64', [2, 3, 1]);
  const ignored = equal(labels, g.scalar(-100, 'int64'));
  const safeLabels = where(ignored, g.scalar(0, 'int64'), labels);
  const mask = where(ignored, g.scalar(0, 'float64'), g.scalar(1, 'float64'));
  const picked = gatherElements(logSoftmax(logits, -1), safeLabels, -1);
  const loss = reduceSum(mul(neg(picked), mask), [0, 1, 2], false);
  return {
    y: loss,
    wrt: [logits],
    fixed: [{ value: labels, data: BigInt64Array.from([4n, -100n, 0n, 2n, 2n, -100n]) }],
  };
}
gradTest('cross-entropy: LogSoftmax + GatherElements + mask (-100 ignored)', crossEntropyCase);

// The same loss on [S,V] logits after a Linear head, with the gradient reaching the weight.
gradTest('LM head + cross-entropy', (g) => {
  const h = g.input('h', 'float64', [2, 3, 4]);
  const head = g.input('lm_head', 'float64', [4, 5]);
  const labels = g.input('labels', 'int64', [2, 3, 1]);
  const picked = gatherElements(logSoftmax(matmul(h, head), -1), labels, -1);
  return {
    y: reduceSum(neg(picked), [0, 1, 2], false),
    wrt: [h, head],
    fixed: [{ value: labels, data: BigInt64Array.from([1n, 4n, 4n, 0n, 3n, 1n]) }],
  };
});

// Mean-subtracted statistics: ReduceMean's gradient feeding back into its own input twice.
gradTest('layer norm (x - mean) / sqrt(var + eps)', (g) => {
  const x = g.input('x', 'float64', [3, 4]);
  const centred = add(x, neg(reduceMean(x, [-1], true)));
  const variance = reduceMean(mul(centred, centred), [-1], true);
  return { y: mul(centred, reciprocal(sqrt(add(variance, c(x, 1e-5))))), wrt: [x] };
});
