import test from 'node:test';
import assert from 'node:assert/strict';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import {
  AttributeProto,
  AttributeProto_AttributeType,
  GraphProto,
  ModelProto,
  NodeProto,
  TensorProto,
  TensorProto_DataType,
  ValueInfoProto,
} from '../../../proto/gen/onnx/onnx.js';
import { encodeModel, float32Tensor, float64Tensor, int32Tensor, int64Tensor } from '../../../shared/onnx/model-proto.js';
import { GraphBuildError } from '../../../shared/errors.js';

// Models are built by hand from the generated protobuf types, serialised, and run by
// onnxruntime: ORT is the oracle that our field numbers and encodings are ONNX's.

const { FLOAT, DOUBLE, INT32, INT64, UINT64 } = TensorProto_DataType;

function tensorInfo(name: string, elemType: number, dims: readonly (number | string)[]): ValueInfoProto {
  const dim = dims.map((d) =>
    typeof d === 'number' ? { value: { $case: 'dimValue' as const, value: d } } : { value: { $case: 'dimParam' as const, value: d } },
  );
  return ValueInfoProto.create({ name, type: { tensorType: { elemType, shape: { dim } } } });
}

function modelOf(graph: GraphProto): ModelProto {
  return ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], producerName: 'kp-coord test', graph });
}

/** mulberry32: a tiny seeded generator, uniform in [-1, 1). */
function uniform(count: number, seed: number): number[] {
  let state = seed >>> 0;
  return Array.from({ length: count }, () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t ^= t + Math.imul(t ^ (t >>> 7), 61 | t);
    return (((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * 2 - 1;
  });
}

/** Row-major [m, k] x [k, n] in float64. */
function matmul(a: readonly number[], b: readonly number[], m: number, k: number, n: number): number[] {
  const out = new Array<number>(m * n).fill(0);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) sum += a[i * k + p]! * b[p * n + j]!;
      out[i * n + j] = sum;
    }
  }
  return out;
}

function transpose(a: readonly number[], rows: number, cols: number): number[] {
  return Array.from({ length: rows * cols }, (_, idx) => a[(idx % rows) * cols + Math.floor(idx / rows)]!);
}

function assertClose(actual: ArrayLike<number>, expected: readonly number[], tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs(actual[i]! - expected[i]!);
    assert.ok(error <= tolerance, `${what}[${i}]: got ${actual[i]}, want ${expected[i]} (error ${error} > ${tolerance})`);
  }
}

const M = 3;
const K = 5;
const N = 4;

// Tolerances for Y = A B + C with |entries| < 1 and K = 5 terms: a float64 dot product's
// rounding error is at most about K * 2^-53 * sum|a b| < 1e-15, so 1e-12 only fails on a wrong
// result. Float32 accumulates at 2^-24: K * 6e-8 * 5 < 2e-6 against a float64 reference
// computed from the same float32-rounded inputs, so 1e-5.
const cases = [
  { dtype: 'float32', elemType: FLOAT, tolerance: 1e-5, round: Math.fround, initializer: float32Tensor },
  { dtype: 'float64', elemType: DOUBLE, tolerance: 1e-12, round: (x: number) => x, initializer: float64Tensor },
] as const;

for (const { dtype, elemType, tolerance, round, initializer } of cases) {
  test(`Y = MatMul(A, B) + C in ${dtype} loads and runs in onnxruntime and matches a JS matmul`, async () => {
    const a = uniform(M * K, 1).map(round);
    const b = uniform(K * N, 2).map(round);
    const c = uniform(N, 3).map(round);

    const model = modelOf(
      GraphProto.create({
        name: `matmul_add_${dtype}`,
        node: [
          NodeProto.create({ opType: 'MatMul', input: ['A', 'B'], output: ['AB'], name: 'matmul' }),
          NodeProto.create({ opType: 'Add', input: ['AB', 'C'], output: ['Y'], name: 'add' }),
        ],
        // C is [N], broadcast over the rows; A's row count is symbolic.
        initializer: [initializer('C', [N], c)],
        input: [tensorInfo('A', elemType, ['rows', K]), tensorInfo('B', elemType, [K, N])],
        output: [tensorInfo('Y', elemType, ['rows', N])],
      }),
    );
    const bytes = encodeModel(model);
    assert.deepEqual(ModelProto.decode(bytes), model, 'decode(encode(model)) gives the model back');

    const session = await InferenceSession.create(bytes);
    try {
      assert.deepEqual(
        session.inputMetadata.map((m) => (m.isTensor ? { name: m.name, type: m.type, shape: m.shape } : m.name)),
        [
          { name: 'A', type: dtype, shape: ['rows', K] },
          { name: 'B', type: dtype, shape: [K, N] },
        ],
      );
      const arrayType = dtype === 'float32' ? Float32Array : Float64Array;
      const result = await session.run({
        A: new Tensor(dtype, arrayType.from(a), [M, K]),
        B: new Tensor(dtype, arrayType.from(b), [K, N]),
      });
      const y = result['Y']!;
      assert.deepEqual(y.dims, [M, N]);
      assert.equal(y.type, dtype);
      const expected = matmul(a, b, M, K, N).map((v, idx) => v + c[idx % N]!);
      assertClose(y.data as Float32Array | Float64Array, expected, tolerance, `Y (${dtype})`);
    } finally {
      await session.release();
    }
  });
}

test('the wire bytes are ONNX\'s: field numbers, an explicit zero attribute, packed and unpacked repeats', () => {
  const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
  // AttributeProto{name: "axis", i: 0, type: INT}: name is field 1 (tag 0x0a, length 4), i is
  // field 3 (tag 0x18) and present although 0, type is field 20 (tag 160 = varint a0 01).
  const axis = AttributeProto.create({ name: 'axis', type: AttributeProto_AttributeType.INT, i: 0 });
  assert.equal(hex(AttributeProto.encode(axis).finish()), '0a0461786973' + '1800' + 'a00102');
  // ints is field 8, unpacked as in ONNX's proto2: one tag (0x40) per element.
  const perm = AttributeProto.create({ name: 'p', type: AttributeProto_AttributeType.INTS, ints: [1, 0] });
  assert.equal(hex(AttributeProto.encode(perm).finish()), '0a0170' + '4001' + '4000' + 'a00107');
  // TensorProto: dims field 1 unpacked (08 02 08 03), data_type field 2, float_data field 4
  // packed (tag 0x22, 4 bytes: 1.0f little-endian), name field 8, raw_data field 9.
  const tensor = TensorProto.create({ dims: [2, 3], dataType: FLOAT, floatData: [1], name: 't', rawData: Buffer.of(7) });
  assert.equal(hex(TensorProto.encode(tensor).finish()), '08020803' + '1001' + '22040000803f' + '420174' + '4a0107');
  // ModelProto: ir_version field 1, graph field 7 (tag 0x3a), opset_import field 8 (tag 0x42)
  // holding OperatorSetIdProto{version: 17} (field 2, tag 0x10).
  const model = ModelProto.create({ irVersion: 8, graph: { name: 'g' }, opsetImport: [{ version: 17 }] });
  assert.equal(hex(encodeModel(model)), '0808' + '3a03' + '120167' + '4202' + '1011');
});

test('attributes reach onnxruntime: Gemm (f, i = 0 and 1), Transpose (ints), Softmax (axis = 0), Einsum (s)', async () => {
  const a = uniform(M * K, 4);
  const b = uniform(N * K, 5); // [N, K]: Gemm uses it transposed
  const c = uniform(M * N, 6);
  const attr = AttributeProto.create;
  const { FLOAT: F, INT: I, INTS, STRING } = AttributeProto_AttributeType;

  const model = modelOf(
    GraphProto.create({
      name: 'attributes',
      node: [
        NodeProto.create({
          opType: 'Gemm',
          input: ['A', 'B', 'C'],
          output: ['Gemm'],
          attribute: [
            attr({ name: 'alpha', type: F, f: 0.5 }),
            attr({ name: 'beta', type: F, f: 2 }),
            attr({ name: 'transA', type: I, i: 0 }),
            attr({ name: 'transB', type: I, i: 1 }),
          ],
        }),
        NodeProto.create({ opType: 'Transpose', input: ['A'], output: ['At'], attribute: [attr({ name: 'perm', type: INTS, ints: [1, 0] })] }),
        // axis = 0, not the default -1: normalises down the columns.
        NodeProto.create({ opType: 'Softmax', input: ['A'], output: ['Softmax'], attribute: [attr({ name: 'axis', type: I, i: 0 })] }),
        NodeProto.create({
          opType: 'Einsum',
          input: ['A', 'B'],
          output: ['Einsum'],
          attribute: [attr({ name: 'equation', type: STRING, s: Buffer.from('mk,nk->mn') })],
        }),
      ],
      input: [tensorInfo('A', DOUBLE, [M, K]), tensorInfo('B', DOUBLE, [N, K]), tensorInfo('C', DOUBLE, [M, N])],
      output: [
        tensorInfo('Gemm', DOUBLE, [M, N]),
        tensorInfo('At', DOUBLE, [K, M]),
        tensorInfo('Softmax', DOUBLE, [M, K]),
        tensorInfo('Einsum', DOUBLE, [M, N]),
      ],
    }),
  );

  const session = await InferenceSession.create(encodeModel(model));
  try {
    const result = await session.run({
      A: new Tensor('float64', Float64Array.from(a), [M, K]),
      B: new Tensor('float64', Float64Array.from(b), [N, K]),
      C: new Tensor('float64', Float64Array.from(c), [M, N]),
    });
    const abt = matmul(a, transpose(b, N, K), M, K, N);
    // float64 throughout, sums of at most K = 5 terms below 1: 1e-12 (see the MatMul test).
    assertClose(result['Gemm']!.data as Float64Array, abt.map((v, idx) => 0.5 * v + 2 * c[idx]!), 1e-12, 'Gemm');
    assert.deepEqual(result['At']!.dims, [K, M]);
    assertClose(result['At']!.data as Float64Array, transpose(a, M, K), 0, 'Transpose');
    const softmax = a.map((v, idx) => {
      const col = idx % K;
      const denominator = Array.from({ length: M }, (_, row) => Math.exp(a[row * K + col]!)).reduce((s, e) => s + e, 0);
      return Math.exp(v) / denominator;
    });
    assertClose(result['Softmax']!.data as Float64Array, softmax, 1e-12, 'Softmax over axis 0');
    assertClose(result['Einsum']!.data as Float64Array, abt, 1e-12, 'Einsum');
  } finally {
    await session.release();
  }
});

test('initializers in raw_data and in every typed *_data field read back exactly through Identity', async () => {
  const float32 = [1.5, -2.25, 3e-8];
  const float64 = [Math.PI, -1e-300, 1e300];
  const int32 = [-(2 ** 31), 0, 2 ** 31 - 1];
  const int64 = [-(2 ** 53) + 1, -1, 2 ** 53 - 1];
  const int64Extremes = BigInt64Array.of(-(2n ** 63n), 2n ** 63n - 1n);
  const uint64 = [0, 1, 2 ** 53 - 1];

  const initializers: [string, TensorProto][] = [
    ['raw_f32', float32Tensor('raw_f32', [3], float32)],
    ['raw_f64', float64Tensor('raw_f64', [3], float64)],
    ['raw_i32', int32Tensor('raw_i32', [3], int32)],
    ['raw_i64', int64Tensor('raw_i64', [3], int64)],
    ['raw_i64_extremes', int64Tensor('raw_i64_extremes', [2], int64Extremes)],
    ['float_data', TensorProto.create({ name: 'float_data', dims: [3], dataType: FLOAT, floatData: float32 })],
    ['double_data', TensorProto.create({ name: 'double_data', dims: [3], dataType: DOUBLE, doubleData: float64 })],
    ['int32_data', TensorProto.create({ name: 'int32_data', dims: [3], dataType: INT32, int32Data: int32 })],
    ['int64_data', TensorProto.create({ name: 'int64_data', dims: [3], dataType: INT64, int64Data: int64 })],
    ['uint64_data', TensorProto.create({ name: 'uint64_data', dims: [3], dataType: UINT64, uint64Data: uint64 })],
  ];
  const model = modelOf(
    GraphProto.create({
      name: 'identities',
      node: initializers.map(([name]) => NodeProto.create({ opType: 'Identity', input: [name], output: [`${name}_out`] })),
      initializer: initializers.map(([, tensor]) => tensor),
      output: initializers.map(([name, tensor]) => tensorInfo(`${name}_out`, tensor.dataType, tensor.dims)),
    }),
  );

  const session = await InferenceSession.create(encodeModel(model));
  try {
    const out = await session.run({});
    const data = (name: string) => Array.from(out[`${name}_out`]!.data as ArrayLike<number | bigint>);
    const float32Rounded = float32.map(Math.fround);
    const asBigInts = (values: readonly number[]) => values.map((v) => BigInt(v));
    assert.deepEqual(data('raw_f32'), float32Rounded);
    assert.deepEqual(data('float_data'), float32Rounded);
    assert.deepEqual(data('raw_f64'), float64);
    assert.deepEqual(data('double_data'), float64);
    assert.deepEqual(data('raw_i32'), int32);
    assert.deepEqual(data('int32_data'), int32);
    assert.deepEqual(data('raw_i64'), asBigInts(int64));
    assert.deepEqual(data('int64_data'), asBigInts(int64));
    assert.deepEqual(data('raw_i64_extremes'), Array.from(int64Extremes));
    assert.deepEqual(data('uint64_data'), asBigInts(uint64));
  } finally {
    await session.release();
  }
});

test('tensor helpers copy their data and reject shapes and values that do not fit', () => {
  const source = Float64Array.of(1, 2, 3, 4, 5, 6);
  const tensor = float64Tensor('x', [2, 3], source.subarray(0, 6));
  source[0] = 99;
  assert.equal(tensor.rawData.readDoubleLE(0), 1, 'raw_data is a copy, not a view');
  assert.equal(tensor.rawData.byteLength, 48);
  assert.deepEqual(tensor.dims, [2, 3]);
  assert.equal(tensor.dataType, DOUBLE);

  // A subarray with a byte offset keeps only its own elements.
  assert.deepEqual([...float32Tensor('tail', [2], Float32Array.of(7, 8, 9).subarray(1)).rawData], [...Buffer.from(Float32Array.of(8, 9).buffer)]);
  // A scalar has no dims and one element.
  assert.equal(int64Tensor('scalar', [], [5]).rawData.readBigInt64LE(0), 5n);

  assert.throws(() => float32Tensor('x', [2, 2], [1, 2, 3]), GraphBuildError);
  assert.throws(() => float32Tensor('x', [2, -1], [1, 2]), /dimension 1 of \[2, -1\] is not a size/);
  assert.throws(() => int32Tensor('x', [2], [1, 1.5]), /element 1 \(1\.5\) is not an int32/);
  assert.throws(() => int32Tensor('x', [1], [2 ** 31]), GraphBuildError);
  assert.throws(() => int64Tensor('x', [1], [2 ** 53]), /element 0 .* is not a safe integer/);
});
