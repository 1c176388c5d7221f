import {
  AttributeProto, AttributeProto_AttributeType, ModelProto, NodeProto, TensorProto, ValueInfoProto,
} from '../../proto/gen/onnx/onnx.js';
import { GraphBuildError } from '../errors.js';
import { dtypeOfArray, ONNX_DTYPE_CODE } from './dtype.js';
import type { Attr, ConstTensor, Graph, Node, Value } from './graph.js';
import { encodeModel } from './model-proto.js';

export const OPSET = 17;
const IR_VERSION = 8;

/**
 * Serialise the graph to ONNX bytes. Only the nodes that the declared outputs depend on are kept
 * (autodiff rules may build gradients nobody asked for); every declared input is kept, so the
 * feed names do not change with the outputs chosen.
 */
export function serializeGraph(graph: Graph): Uint8Array {
  if (graph.outputs.length === 0) throw new GraphBuildError(`graph ${graph.name}: no outputs declared`);
  const live = liveNodes(graph);

  // A value that is an output under one name and computed by a node takes that name; otherwise
  // (graph input, or the same value under two names) an Identity carries it out.
  const rename = new Map<Value, string>();
  const identities: NodeProto[] = [];
  for (const { name, value } of graph.outputs) {
    if (value.producer && !rename.has(value) && !graph.inputs.includes(value)) rename.set(value, name);
    else identities.push(NodeProto.create({ opType: 'Identity', input: [rename.get(value) ?? value.name], output: [name], name: `out_${name}` }));
  }
  const nameOf = (v: Value) => rename.get(v) ?? v.name;

  const usedConstants = new Set<Value>();
  for (const n of live) for (const v of n.inputs) if (v.constant) usedConstants.add(v);
  for (const { value } of graph.outputs) if (value.constant) usedConstants.add(value);

  const model = ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'kp-coord',
    opsetImport: [{ domain: '', version: OPSET }],
    graph: {
      name: graph.name,
      docString: '',
      node: [
        ...live.map((n) =>
          NodeProto.create({
            opType: n.op,
            name: `n${n.id}_${n.op}`,
            input: n.inputs.map(nameOf),
            output: n.outputs.map(nameOf),
            attribute: Object.entries(n.attrs).map(([k, a]) => attributeProto(k, a)),
          }),
        ),
        ...identities,
      ],
      initializer: [...usedConstants].map((v) => tensorProto(v.name, v.constant!)),
      input: graph.inputs.map((v) => valueInfo(v.name, v)),
      output: graph.outputs.map(({ name, value }) => valueInfo(name, value)),
      valueInfo: [],
    },
  });
  return encodeModel(model);
}

function liveNodes(graph: Graph): Node[] {
  const needed = new Set<Value>(graph.outputs.map((o) => o.value));
  const keep: Node[] = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i]!;
    if (!n.outputs.some((o) => needed.has(o))) continue;
    keep.push(n);
    for (const v of n.inputs) needed.add(v);
  }
  return keep.reverse();
}

function valueInfo(name: string, v: Value): ValueInfoProto {
  return ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: ONNX_DTYPE_CODE[v.dtype],
        shape: {
          dim: v.shape.map((d) =>
            typeof d === 'number' ? { value: { $case: 'dimValue', value: d }, denotation: '' } : { value: { $case: 'dimParam', value: d }, denotation: '' },
          ),
        },
      },
      denotation: '',
    },
  });
}

function tensorProto(name: string, t: ConstTensor): TensorProto {
  return TensorProto.create({
    name,
    dims: [...t.shape],
    dataType: ONNX_DTYPE_CODE[dtypeOfArray(t.data)],
    rawData: Buffer.from(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
  });
}

function attributeProto(name: string, a: Attr): AttributeProto {
  const T = AttributeProto_AttributeType;
  if ('i' in a) return AttributeProto.create({ name, type: T.INT, i: a.i });
  if ('f' in a) return AttributeProto.create({ name, type: T.FLOAT, f: a.f });
  if ('s' in a) return AttributeProto.create({ name, type: T.STRING, s: Buffer.from(a.s, 'utf8') });
  if ('ints' in a) return AttributeProto.create({ name, type: T.INTS, ints: [...a.ints] });
  if ('floats' in a) return AttributeProto.create({ name, type: T.FLOATS, floats: [...a.floats] });
  return AttributeProto.create({ name, type: T.TENSOR, t: tensorProto(name, a.t) });
}
