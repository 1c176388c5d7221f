import test from 'node:test';
import assert from 'node:assert/strict';
import { gradients } from '../../../shared/autodiff/backward.js';
import { GraphBuildError } from '../../../shared/errors.js';
import { Graph } from '../../../shared/onnx/graph.js';
import { gather, gatherElements, logSoftmax, matmul, reduceSum, softmax } from '../../../shared/onnx/ops.js';
import { binaryCase, gradTest, unaryCase, type GradCheckCase } from '../../helpers/gradcheck.js';

// Finite-difference checks of the softmax, matmul and indexing rules (tolerances: see
// test/helpers/gradcheck.ts).

gradTest('Softmax axis -1', unaryCase((x) => softmax(x, -1), [2, 3, 4]));
gradTest('Softmax axis 1 (not last)', unaryCase((x) => softmax(x, 1), [2, 3, 4]));
gradTest('LogSoftmax axis -1', unaryCase((x) => logSoftmax(x, -1), [2, 3, 4]));
gradTest('LogSoftmax axis 0', unaryCase((x) => logSoftmax(x, 0), [2, 3, 4]));

gradTest('MatMul 2-D [3,4] x [4,5]', binaryCase(matmul, [3, 4], [4, 5]));
gradTest('MatMul batched [2,3,4] x [2,4,5]', binaryCase(matmul, [2, 3, 4], [2, 4, 5]));
gradTest('MatMul broadcast batch [2,1,3,4] x [3,4,5]', binaryCase(matmul, [2, 1, 3, 4], [3, 4, 5]));
gradTest('MatMul broadcast batch [1,3,4] x [2,4,5]', binaryCase(matmul, [1, 3, 4], [2, 4, 5]));
gradTest('MatMul matrix by batch [3,4] x [2,4,5]', binaryCase(matmul, [3, 4], [2, 4, 5]));
// The Linear case: activations [B,S,K] times a weight [K,N] (the rule folds B,S into rows).
gradTest('MatMul Linear [2,3,4] x [4,5]', binaryCase(matmul, [2, 3, 4], [4, 5]));
gradTest('MatMul Linear rank 4 [2,2,3,4] x [4,5]', binaryCase(matmul, [2, 2, 3, 4], [4, 5]));

/** Embedding lookup: a [5,3] table gathered by [2,4] indices that repeat rows (their gradients must add). */
function embeddingCase(indexType: 'int32' | 'int64') {
  const rows = [0, 2, 2, 4, 1, 2, 0, 2];
  return (g: Graph): GradCheckCase => {
    const table = g.input('table', 'float64', [5, 3]);
    const ids = g.input('ids', indexType, [2, 4]);
    const data = indexType === 'int32' ? Int32Array.from(rows) : BigInt64Array.from(rows.map(BigInt));
    return { y: gather(table, ids, 0), wrt: [table], fixed: [{ value: ids, data }] };
  };
}
gradTest('Gather embedding, repeated int64 indices', embeddingCase('int64'));
gradTest('Gather embedding, repeated int32 indices', embeddingCase('int32'));
gradTest('Gather with a scalar index', (g) => {
  const table = g.input('table', 'float64', [4, 3]);
  const id = g.input('id', 'int64', []);
  return { y: gather(table, id, 0), wrt: [table], fixed: [{ value: id, data: BigInt64Array.from([2n]) }] };
});

gradTest('Gather with negative indices (counted from the end)', (g) => {
  const table = g.input('table', 'float64', [4, 3]);
  const ids = g.input('ids', 'int64', [3]);
  return { y: gather(table, ids, 0), wrt: [table], fixed: [{ value: ids, data: BigInt64Array.from([-1n, 0n, -1n]) }] };
});

test('Gather along axis 1 has no gradient rule and says so', () => {
  const g = new Graph();
  const x = g.input('x', 'float64', [2, 3]);
  const ids = g.input('ids', 'int64', [2]);
  const y = reduceSum(gather(x, ids, 1), [0, 1], false);
  assert.throws(() => gradients([{ value: y }], [x]), (e: unknown) => e instanceof GraphBuildError && /Gather: gradient only along axis 0/.test(e.message));
});

/** GatherElements with indices that repeat along `axis` (scatter-add must accumulate them). */
function gatherElementsCase(axis: number, indexType: 'int32' | 'int64') {
  // data [3,4]; along axis 1 pick 2 of 4 columns per row, along axis 0 pick 2 of 3 rows per column.
  const spec = axis === 1 ? { shape: [3, 2], idx: [1, 1, 3, 0, 2, 2] } : { shape: [2, 4], idx: [0, 2, 2, 1, 0, 0, 1, 2] };
  return (g: Graph): GradCheckCase => {
    const data = g.input('data', 'float64', [3, 4]);
    const idx = g.input('idx', indexType, spec.shape);
    const values = indexType === 'int32' ? Int32Array.from(spec.idx) : BigInt64Array.from(spec.idx.map(BigInt));
    return { y: gatherElements(data, idx, axis), wrt: [data], fixed: [{ value: idx, data: values }] };
  };
}
gradTest('GatherElements axis 1, int64 indices', gatherElementsCase(1, 'int64'));
gradTest('GatherElements axis 1, int32 indices', gatherElementsCase(1, 'int32'));
gradTest('GatherElements axis 0, int64 indices', gatherElementsCase(0, 'int64'));
gradTest('GatherElements with negative indices', (g) => {
  const data = g.input('data', 'float64', [2, 3]);
  const idx = g.input('idx', 'int64', [2, 2]);
  return { y: gatherElements(data, idx, -1), wrt: [data], fixed: [{ value: idx, data: BigInt64Array.from([-1n, 0n, -3n, -3n]) }] };
});
