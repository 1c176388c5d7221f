import { reduceSum, reshapeLike } from '../onnx/ops.js';
import type { Value } from '../onnx/graph.js';
import { sameShape } from '../onnx/shape.js';

/**
 * Sum a gradient over the axes that broadcasting expanded, so it has `target`'s shape again.
 * The axes are known at build time from the tracked shapes (a 1 against anything else).
 */
export function unbroadcast(grad: Value, target: Value): Value {
  if (sameShape(grad.shape, target.shape)) return grad;
  const lead = grad.rank - target.rank;
  const axes: number[] = [];
  for (let i = 0; i < grad.rank; i++) {
    if (i < lead) axes.push(i);
    else if (target.shape[i - lead] === 1 && grad.shape[i] !== 1) axes.push(i);
  }
  const summed = axes.length > 0 ? reduceSum(grad, axes, true) : grad;
  return sameShape(summed.shape, target.shape) ? summed : reshapeLike(summed, target);
}
