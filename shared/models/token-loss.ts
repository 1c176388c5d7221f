import type { FloatDType } from '../onnx/dtype.js';
import type { Value } from '../onnx/graph.js';
import { equal, gatherElements, logSoftmax, mul, neg, reduceSum, reshape, squeeze, unsqueeze, where } from '../onnx/ops.js';

/**
 * The cross-entropy *sum* over tokens of `logits` [batch, len, vocab] against `labels` [batch, len]
 * (-100 ignored), and the count of scored tokens: what every model's head outputs, so that the
 * coordinator divides by the global count (HF's mean over the global batch).
 */
export function tokenLossSum(logits: Value, labels: Value, vocabSize: number): { lossSum: Value; tokenCount: Value } {
  const g = logits.graph;
  const dtype = logits.dtype as FloatDType;
  const rows = `${labels.shape[0]}*${labels.shape[1]}`;
  const logProbs = logSoftmax(reshape(logits, [rows, vocabSize]), -1);
  const flatLabels = reshape(labels, [rows]);
  const ignored = equal(flatLabels, g.scalar(-100, 'int32'));
  const safeLabels = where(ignored, g.scalar(0, 'int32'), flatLabels);
  const valid = where(ignored, g.scalar(0, dtype), g.scalar(1, dtype));
  const picked = squeeze(gatherElements(logProbs, unsqueeze(safeLabels, [1]), 1), [1]);
  const lossSum = neg(reduceSum(mul(picked, valid), [0], false));
  const tokenCount = reduceSum(valid, [0], false);
  return { lossSum, tokenCount };
}
