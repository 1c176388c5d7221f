import { add, cast, cos, div, erf, exp, identity, log, mul, neg, pow, reciprocal, relu, sigmoid, sin, sqrt, sub, sum, tanh } from '../../../shared/onnx/ops.js';
import { binaryCase, draws, gradTest, unaryCase } from '../../helpers/gradcheck.js';

// One finite-difference check per elementwise rule (tolerances: see test/helpers/gradcheck.ts).
// Binary ops run on equal shapes and on each broadcasting pattern the models use: a trailing
// vector ([2,3] with [3]), both sides broadcast ([2,1] with [1,4]), and a scalar operand.

const { positive, awayFromZero } = draws;

gradTest('Identity', unaryCase(identity));
gradTest('Neg', unaryCase(neg));
gradTest('Sqrt', unaryCase(sqrt, [2, 3], positive));
gradTest('Exp', unaryCase(exp));
gradTest('Log', unaryCase(log, [2, 3], positive));
gradTest('Reciprocal', unaryCase(reciprocal, [2, 3], awayFromZero));
gradTest('Tanh', unaryCase(tanh));
gradTest('Sigmoid', unaryCase(sigmoid));
// ORT's CPU provider has no float64 Erf kernel, so Erf runs in float32 between casts: float32
// rounding (6e-8) over a step h = 1e-2 costs ~1e-5 of the gradient and truncation h^2/6 |erf'''|
// ~2e-5, hence rtol 1e-3; a wrong rule (sign, factor 2/sqrt(pi), exp(-x) for exp(-x^2)) is off by
// O(1). Inputs of scale 2 reach erf's flat tails as well as its slope. Sin/cos over several periods.
gradTest('Erf (float32 kernel between casts)', unaryCase((x) => cast(erf(cast(x, 'float32')), 'float64'), [3, 4], (rng) => 2 * rng.normal()), { h: 1e-2, rtol: 1e-3 });
gradTest('Sin', unaryCase(sin, [3, 4], (rng) => 4 * rng.normal()));
gradTest('Cos', unaryCase(cos, [3, 4], (rng) => 4 * rng.normal()));
gradTest('Relu', unaryCase(relu, [3, 4], awayFromZero));

const broadcasts: readonly [string, readonly number[], readonly number[]][] = [
  ['[2,3] with [2,3]', [2, 3], [2, 3]],
  ['[2,3] with [3]', [2, 3], [3]],
  ['[3] with [2,3]', [3], [2, 3]],
  ['[2,1] with [1,4]', [2, 1], [1, 4]],
  ['[2,3] with scalar', [2, 3], []],
  ['scalar with [2,3]', [], [2, 3]],
];

for (const [label, sa, sb] of broadcasts) {
  gradTest(`Add ${label}`, binaryCase(add, sa, sb));
  gradTest(`Sub ${label}`, binaryCase(sub, sa, sb));
  gradTest(`Mul ${label}`, binaryCase(mul, sa, sb));
  gradTest(`Div ${label}`, binaryCase(div, sa, sb, { b: awayFromZero }));
  // Both base and exponent are differentiated, so the base must be positive (d/db a^b = a^b ln a).
  gradTest(`Pow ${label}`, binaryCase(pow, sa, sb, { a: positive }));
}

// x^2 and x^3 with a constant exponent on a base of either sign: the rule's b * a^(b-1) form
// must hold for negative bases too (RMSNorm and gelu_new use exactly these).
gradTest('Pow with constant exponent 2, negative bases', unaryCase((x) => pow(x, x.graph.scalar(2, 'float64')), [2, 3], awayFromZero));
gradTest('Pow with constant exponent 3', unaryCase((x) => pow(x, x.graph.scalar(3, 'float64'))));

// Sum (variadic, autodiff's fan-out sums): three operands, one broadcast from a row, one scalar.
gradTest('Sum of three, equal shapes', (g) => {
  const xs = [0, 1, 2].map((i) => g.input(`x${i}`, 'float64', [2, 3]));
  return { y: sum(xs), wrt: xs };
});
gradTest('Sum of [2,3], [3] and a scalar (broadcast)', (g) => {
  const xs = [g.input('a', 'float64', [2, 3]), g.input('b', 'float64', [3]), g.input('c', 'float64', [])];
  return { y: sum(xs), wrt: xs };
});
