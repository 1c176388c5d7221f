import { MissingGradientError } from '../errors.js';
import { isFloat } from '../onnx/dtype.js';
import type { Node, Value } from '../onnx/graph.js';
import { add, scalarLike, zerosLike } from '../onnx/ops.js';
import { sameShape } from '../onnx/shape.js';
import { gradRules } from './rules.js';

/** What to differentiate: a value and the gradient flowing into it (default 1 for a scalar loss). */
export interface GradientTarget {
  readonly value: Value;
  /** Upstream gradient, same shape as `value`: a graph input when differentiating one block. */
  readonly seed?: Value;
}

/**
 * Reverse-mode autodiff: append to the graph the nodes that compute d(targets)/d(wrt), and return
 * one gradient per `wrt` value (zeros where a value does not reach the targets).
 *
 * Only nodes on a path from some `wrt` to some target are differentiated (pruning); a value used
 * by several nodes sums their contributions (fan-out). Nodes are walked in reverse creation order,
 * which is a topological order because a node can only use values that already exist.
 */
export function gradients(targets: readonly GradientTarget[], wrt: readonly Value[]): Value[] {
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

  const contributions = new Map<Value, Value[]>();
  const contribute = (v: Value, g: Value) => {
    if (!sameShape(g.shape, v.shape) || g.dtype !== v.dtype) {
      throw new MissingGradientError(`gradient for ${v} came out as ${g}: a rule returned the wrong shape`);
    }
    const list = contributions.get(v);
    if (list) list.push(g);
    else contributions.set(v, [g]);
  };
  const total = (v: Value): Value | null => {
    const list = contributions.get(v);
    if (!list || list.length === 0) return null;
    return list.reduce((acc, g) => add(acc, g));
  };

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
  return wrt.map((w) => total(w) ?? zerosLike(w));
}
