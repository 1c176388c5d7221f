import { MissingGradientError } from '../errors.js';
import { isFloat } from '../onnx/dtype.js';
import type { Node, Value } from '../onnx/graph.js';
import { scalarLike, sum, zerosLike } from '../onnx/ops.js';
import { sameShape } from '../onnx/shape.js';
import { denseRows, gradRules, type Gradient, type RowGradient } from './rules.js';

/** What to differentiate: a value and the gradient flowing into it (default 1 for a scalar loss). */
export interface GradientTarget {
  readonly value: Value;
  /** Upstream gradient, same shape as `value`: a graph input when differentiating one block. */
  readonly seed?: Value;
}

/** The gradient of one `wrt` value in parts: a dense sum (null: none) and row gradients to add to it. */
export interface GradientParts {
  readonly dense: Value | null;
  readonly rows: readonly RowGradient[];
}

/**
 * Reverse-mode autodiff: append to the graph the nodes that compute d(targets)/d(wrt), and return
 * one dense gradient per `wrt` value (zeros where a value does not reach the targets).
 */
export function gradients(targets: readonly GradientTarget[], wrt: readonly Value[]): Value[] {
  return gradientParts(targets, wrt).map((p, i) => densify(p, wrt[i]!) ?? zerosLike(wrt[i]!));
}

/** One dense tensor: the dense part plus the rows scattered into a zero table of v's shape (null: none). */
function densify(p: GradientParts, v: Value): Value | null {
  const all = [...(p.dense ? [p.dense] : []), ...p.rows.map((r) => denseRows(r, v))];
  return all.length > 0 ? sum(all) : null;
}

/**
 * The same, with each `wrt` value's row gradients (embedding lookups) left as rows for the caller
 * to add into its own buffer, instead of scattered into a dense zero table in the graph.
 *
 * Only nodes on a path from some `wrt` to some target are differentiated (pruning); a value used
 * by several nodes sums their contributions (fan-out). Nodes are walked in reverse creation order,
 * which is a topological order because a node can only use values that already exist. A value
 * that is not a `wrt` and got row gradients (a computed table) has them made dense before its own
 * producer's rule runs.
 */
export function gradientParts(targets: readonly GradientTarget[], wrt: readonly Value[]): GradientParts[] {
  const graph = targets[0]?.value.graph;
  if (!graph) throw new MissingGradientError('gradients: no targets');
  const forward = graph.nodes.slice();

  // Values that depend on some wrt value (through float data; indices and masks carry no gradient).
  const dependsOnWrt = new Set<Value>(wrt);
  for (const node of forward) {
    if (node.inputs.some((v) => dependsOnWrt.has(v))) for (const o of node.outputs) if (isFloat(o.dtype)) dependsOnWrt.add(o);
  }
  // Nodes whose outputs reach a target.
  const reachesTarget = new Set<Value>(targets.map((t) => t.value));
  const onPath: Node[] = [];
  for (let i = forward.length - 1; i >= 0; i--) {
    const node = forward[i]!;
    if (!node.outputs.some((o) => reachesTarget.has(o))) continue;
    for (const v of node.inputs) reachesTarget.add(v);
    if (node.outputs.some((o) => dependsOnWrt.has(o))) onPath.push(node);
  }

  const contributions = new Map<Value, Gradient[]>();
  const contribute = (v: Value, g: Gradient) => {
    const shapeOk = 'kind' in g ? g.rows.rank === 2 && g.rows.shape[1] === v.shape[1] && v.rank === 2 : sameShape(g.shape, v.shape);
    const dtype = 'kind' in g ? g.rows.dtype : g.dtype;
    if (!shapeOk || dtype !== v.dtype) {
      throw new MissingGradientError(`gradient for ${v} came out as ${'kind' in g ? g.rows : g}: a rule returned the wrong shape`);
    }
    const list = contributions.get(v);
    if (list) list.push(g);
    else contributions.set(v, [g]);
  };
  const parts = (v: Value): GradientParts => {
    const list = contributions.get(v) ?? [];
    const dense = list.filter((g): g is Value => !('kind' in g));
    return { dense: dense.length > 0 ? sum(dense) : null, rows: list.filter((g): g is RowGradient => 'kind' in g) };
  };
  const total = (v: Value): Value | null => densify(parts(v), v);

  for (const t of targets) {
    if (!t.seed && t.value.rank !== 0) {
      throw new MissingGradientError(`target ${t.value} is not a scalar: pass a seed (upstream gradient) of its shape`);
    }
    contribute(t.value, t.seed ?? scalarLike(t.value, 1));
  }

  for (const node of onPath) {
    const gy = total(node.outputs[0]!);
    if (!gy) continue;
    const rule = gradRules[node.op];
    if (!rule) throw new MissingGradientError(`no gradient rule for ${node.op} (node producing ${node.outputs[0]!.name})`);
    if (node.outputs.length !== 1) throw new MissingGradientError(`${node.op}: gradients of multi-output nodes are not supported`);
    const grads = rule({ node, x: node.inputs, y: node.outputs, gy });
    if (grads.length !== node.inputs.length) {
      throw new MissingGradientError(`${node.op}: rule returned ${grads.length} gradients for ${node.inputs.length} inputs`);
    }
    node.inputs.forEach((v, i) => {
      const g = grads[i];
      if (g && dependsOnWrt.has(v) && reachesTarget.has(v)) contribute(v, g);
    });
  }
  return wrt.map(parts);
}
