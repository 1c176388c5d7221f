import { WeightsMismatchError } from '../errors.js';
import { numel, type ParamSpec } from '../models/t5-params.js';

// [Note: flat layout] All trainable parameters of a worker live in one Float32Array, concatenated in
// ParamSpec order (HF `named_parameters()` order), each row-major in its PyTorch shape. Gradients and
// optimizer moments use the same layout, so ZeRO can cut the buffer into contiguous rank ranges and
// the engine can hand each parameter to ONNX Runtime as a zero-copy view.

export interface FlatParam {
  /** Position in the layout (also the key of the parameter's init stream). */
  readonly index: number;
  readonly name: string;
  readonly shape: readonly number[];
  /** First element of this parameter in the flat buffer. */
  readonly offset: number;
  /** Element count (product of the shape). */
  readonly size: number;
  readonly init: ParamSpec['init'];
}

export class FlatLayout {
  readonly params: readonly FlatParam[];
  /** Elements covered by the parameters; a flat buffer may be longer (padding), never shorter. */
  readonly totalSize: number;
  private readonly byName: ReadonlyMap<string, FlatParam>;

  private constructor(params: FlatParam[]) {
    this.params = Object.freeze(params);
    this.byName = new Map(params.map((p) => [p.name, p]));
    const last = params.at(-1);
    this.totalSize = last ? last.offset + last.size : 0;
    Object.freeze(this);
  }

  static fromSpecs(specs: readonly ParamSpec[]): FlatLayout {
    const seen = new Set<string>();
    let offset = 0;
    const params = specs.map((spec, index) => {
      if (seen.has(spec.name)) throw new WeightsMismatchError(`parameter '${spec.name}' listed twice in the layout`);
      seen.add(spec.name);
      const size = numel(spec.shape);
      const p: FlatParam = Object.freeze({ index, name: spec.name, shape: Object.freeze([...spec.shape]), offset, size, init: spec.init });
      offset += size;
      return p;
    });
    return new FlatLayout(params);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  get(name: string): FlatParam {
    const p = this.byName.get(name);
    if (!p) throw new WeightsMismatchError(`no parameter named '${name}' in the layout`);
    return p;
  }

  /** The parameter's elements in `flat`, as a view (no copy): writes go to `flat`. */
  view<T extends Float32Array | Float64Array>(flat: T, name: string): T {
    this.checkLength(flat);
    const p = this.get(name);
    return flat.subarray(p.offset, p.offset + p.size) as T;
  }

  /** Parameters overlapping the element range [begin, end), in layout order. */
  paramsInRange(begin: number, end: number): FlatParam[] {
    return this.params.filter((p) => p.offset < end && p.offset + p.size > begin);
  }

  checkLength(flat: Float32Array | Float64Array): void {
    if (flat.length < this.totalSize) {
      throw new WeightsMismatchError(`flat buffer has ${flat.length} elements, the layout needs ${this.totalSize}`);
    }
  }
}
