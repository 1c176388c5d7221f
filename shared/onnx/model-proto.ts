import { endianness } from 'node:os';
import { GraphBuildError } from '../errors.js';
import { ModelProto, TensorProto, TensorProto_DataType } from '../../proto/gen/onnx/onnx.js';

// The thin typed layer over the generated ONNX protobuf code (proto/gen/onnx/onnx.ts): serialise
// a ModelProto for onnxruntime, and make dense TensorProtos from typed arrays.
//
// Tensors go in `raw_data` (little-endian, fixed width), never in the typed *_data fields: it is
// one copy instead of a varint per element, and the only field that holds every int64 exactly
// (the generated code maps int64 fields to JS numbers).

/** Protobuf cannot represent a message of 2 GiB or more; onnxruntime refuses to parse one. */
const MAX_MODEL_BYTES = 2 ** 31 - 1;

/** Serialises a model to the bytes `InferenceSession.create` takes. */
export function encodeModel(model: ModelProto): Uint8Array {
  const bytes = ModelProto.encode(model).finish();
  if (bytes.byteLength > MAX_MODEL_BYTES) {
    throw new GraphBuildError(
      `model "${model.graph?.name ?? ''}" serialises to ${bytes.byteLength} bytes, over protobuf's 2 GiB limit; ` +
        'pass large tensors as graph inputs instead of initializers',
    );
  }
  return bytes;
}

export function float32Tensor(name: string, dims: readonly number[], values: Float32Array | readonly number[]): TensorProto {
  const data = values instanceof Float32Array ? values : Float32Array.from(values);
  return rawTensor(name, dims, TensorProto_DataType.FLOAT, data);
}

export function float64Tensor(name: string, dims: readonly number[], values: Float64Array | readonly number[]): TensorProto {
  const data = values instanceof Float64Array ? values : Float64Array.from(values);
  return rawTensor(name, dims, TensorProto_DataType.DOUBLE, data);
}

export function int32Tensor(name: string, dims: readonly number[], values: Int32Array | readonly number[]): TensorProto {
  if (!(values instanceof Int32Array)) {
    const bad = values.findIndex((v) => !Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31);
    if (bad >= 0) throw new GraphBuildError(`tensor "${name}": element ${bad} (${values[bad]}) is not an int32`);
  }
  const data = values instanceof Int32Array ? values : Int32Array.from(values);
  return rawTensor(name, dims, TensorProto_DataType.INT32, data);
}

/** Numbers must be safe integers; a BigInt64Array carries the full int64 range (e.g. INT64_MAX). */
export function int64Tensor(name: string, dims: readonly number[], values: BigInt64Array | readonly number[]): TensorProto {
  if (!(values instanceof BigInt64Array)) {
    const bad = values.findIndex((v) => !Number.isSafeInteger(v));
    if (bad >= 0) throw new GraphBuildError(`tensor "${name}": element ${bad} (${values[bad]}) is not a safe integer`);
  }
  const data = values instanceof BigInt64Array ? values : BigInt64Array.from(values, (v) => BigInt(v));
  return rawTensor(name, dims, TensorProto_DataType.INT64, data);
}

function rawTensor(
  name: string,
  dims: readonly number[],
  dataType: TensorProto_DataType,
  data: Float32Array | Float64Array | Int32Array | BigInt64Array,
): TensorProto {
  const badDim = dims.findIndex((d) => !Number.isSafeInteger(d) || d < 0);
  if (badDim >= 0) {
    throw new GraphBuildError(`tensor "${name}": dimension ${badDim} of [${dims.join(', ')}] is not a size`);
  }
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    throw new GraphBuildError(`tensor "${name}": shape [${dims.join(', ')}] has ${count} elements, data has ${data.length}`);
  }
  // Typed arrays are in host byte order and raw_data must be little-endian; onnxruntime-node
  // ships only little-endian builds (x64, arm64), so a big-endian host is not worth a swap path.
  if (endianness() !== 'LE') throw new GraphBuildError('ONNX raw_data needs a little-endian host');
  // Buffer.from(Uint8Array) copies: the tensor is a value, unaffected by later writes to `data`.
  const rawData = Buffer.from(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return TensorProto.create({ name, dims: [...dims], dataType, rawData });
}
