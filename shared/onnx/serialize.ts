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
  return serializeSubgraph(graph, graph.outputs, null);
}

/**
 * Serialise part of a graph: the nodes `outputs` depend on, cut at `inputs` (values computed in the
 * graph become model inputs there: how a block's backward takes the activations its forward saved).
 * `inputs: null` declares every graph input; a list declares exactly the listed values, and every
 * graph input the kept nodes read must be in it.
 */
export function serializeSubgraph(
  graph: Graph,
  outputs: readonly { readonly name: string; readonly value: Value }[],
  inputs: readonly Value[] | null,
): Uint8Array {
  if (outputs.length === 0) throw new GraphBuildError(`graph ${graph.name}: no outputs declared`);
  const declared = inputs ?? graph.inputs;
  const cut = new Set<Value>(declared);
  const live = liveNodes(graph, outputs, cut);
  if (inputs) {
    for (const n of live) {
      for (const v of n.inputs) {
        if (!v.producer && !v.constant && !cut.has(v)) throw new GraphBuildError(`graph ${graph.name}: kept node ${n.op} reads input ${v.name}, which is not declared`);
      }
    }
  }

  // A value that is an output under one name and computed by a node takes that name; otherwise
  // (model input, or the same value under two names) an Identity carries it out.
  const rename = new Map<Value, string>();
  const identities: NodeProto[] = [];
  for (const { name, value } of outputs) {
    if (value.producer && !rename.has(value) && !cut.has(value)) rename.set(value, name);
    else identities.push(NodeProto.create({ opType: 'Identity', input: [rename.get(value) ?? value.name], output: [name], name: `out_${name}` }));
  }
  const nameOf = (v: Value) => rename.get(v) ?? v.name;

  const usedConstants = new Set<Value>();
  for (const n of live) for (const v of n.inputs) if (v.constant) usedConstants.add(v);
  for (const { value } of outputs) if (value.constant) usedConstants.add(value);

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
      input: declared.map((v) => valueInfo(v.name, v)),
      output: outputs.map(({ name, value }) => valueInfo(name, value)),
      valueInfo: [],
    },
  });
  return encodeModel(model);
}

/** The nodes the outputs depend on, in creation order, not looking past values in `cut`. */
export function liveNodes(graph: Graph, outputs: readonly { readonly value: Value }[], cut: ReadonlySet<Value> = new Set()): Node[] {
  const needed = new Set<Value>(outputs.map((o) => o.value).filter((v) => !cut.has(v)));
  const keep: Node[] = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i]!;
    if (!n.outputs.some((o) => needed.has(o))) continue;
    keep.push(n);
    for (const v of n.inputs) if (!cut.has(v)) needed.add(v);
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
