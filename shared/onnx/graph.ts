import { GraphBuildError } from '../errors.js';
import { dtypeOfArray, type AnyTypedArray, type DType } from './dtype.js';
import { formatShape, type Dim, type Shape } from './shape.js';

// The in-memory graph the DSL builds and autodiff extends. Values know their graph, dtype and
// shape, so every op checks its operands when it is added, not when ORT loads the model.

export type Attr =
  | { readonly i: number }
  | { readonly f: number }
  | { readonly s: string }
  | { readonly ints: readonly number[] }
  | { readonly floats: readonly number[] }
  | { readonly t: ConstTensor };

export type Attrs = Readonly<Record<string, Attr>>;

export interface ConstTensor {
  readonly data: AnyTypedArray;
  readonly shape: readonly number[];
}

export class Value {
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly name: string,
    readonly dtype: DType,
    readonly shape: Shape,
    /** The node that computes this value; null for graph inputs and constants. */
    readonly producer: Node | null,
    readonly constant: ConstTensor | null,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  toString(): string {
    return `${this.name}: ${this.dtype}${formatShape(this.shape)}`;
  }
}

export interface Node {
  readonly id: number;
  readonly op: string;
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
  readonly attrs: Attrs;
}

export interface OutputSpec {
  readonly dtype: DType;
  readonly shape: Shape;
}

export class Graph {
  readonly inputs: Value[] = [];
  readonly constants: Value[] = [];
  readonly nodes: Node[] = [];
  /** Named graph outputs, in order. */
  readonly outputs: { readonly name: string; readonly value: Value }[] = [];
  private nextId = 0;
  private readonly names = new Set<string>();
  private readonly scalarCache = new Map<string, Value>();

  constructor(readonly name = 'kp_coord') {}

  input(name: string, dtype: DType, shape: Shape): Value {
    const v = new Value(this, this.nextId++, this.claim(name), dtype, shape, null, null);
    this.inputs.push(v);
    return v;
  }

  constant(data: AnyTypedArray, shape: readonly number[], name?: string): Value {
    const size = shape.reduce((a, b) => a * b, 1);
    if (data.length !== size) {
      throw new GraphBuildError(`constant ${name ?? ''}: ${data.length} elements for shape ${formatShape(shape)}`);
    }
    const id = this.nextId++;
    const v = new Value(this, id, this.claim(name ?? `const_${id}`), dtypeOfArray(data), shape, null, { data, shape });
    this.constants.push(v);
    return v;
  }

  /** A scalar constant of `dtype`, shared between uses (ORT needs the operand's exact dtype). */
  scalar(value: number, dtype: DType): Value {
    const key = `${dtype}:${Object.is(value, -0) ? '-0' : value}`;
    const cached = this.scalarCache.get(key);
    if (cached) return cached;
    const v = this.constant(makeArray(dtype, [value]), []);
    this.scalarCache.set(key, v);
    return v;
  }

  /** A 1-D int64 constant (shapes, axes, perms). */
  ints(values: readonly number[]): Value {
    return this.constant(BigInt64Array.from(values.map((x) => BigInt(x))), [values.length]);
  }

  /** Add a node. `outputs` are computed by the op's builder (see ops.ts), which checked the operands. */
  emit(op: string, inputs: readonly Value[], attrs: Attrs, outputs: readonly OutputSpec[]): Value[] {
    for (const v of inputs) {
      if (v.graph !== this) throw new GraphBuildError(`${op}: operand ${v.name} belongs to another graph`);
    }
    const id = this.nextId++;
    const outValues: Value[] = [];
    const node: Node = { id, op, inputs: [...inputs], outputs: outValues, attrs };
    outputs.forEach((o, k) => {
      outValues.push(new Value(this, this.nextId++, this.claim(`${op.toLowerCase()}_${id}_${k}`), o.dtype, o.shape, node, null));
    });
    this.nodes.push(node);
    return outValues;
  }

  /** Mark `value` as a graph output called `name` (an Identity when the name differs). */
  output(name: string, value: Value): Value {
    if (this.outputs.some((o) => o.name === name)) throw new GraphBuildError(`output ${name} declared twice`);
    this.outputs.push({ name, value });
    return value;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new GraphBuildError(`value name ${name} used twice`);
    this.names.add(name);
    return name;
  }
}

export function makeArray(dtype: DType, values: readonly number[]): AnyTypedArray {
  switch (dtype) {
    case 'float32':
      return Float32Array.from(values);
    case 'float64':
      return Float64Array.from(values);
    case 'int32':
      return Int32Array.from(values);
    case 'int64':
      return BigInt64Array.from(values.map((x) => BigInt(x)));
    case 'bool':
      return Uint8Array.from(values.map((x) => (x ? 1 : 0)));
  }
}

export type { Dim, Shape };
