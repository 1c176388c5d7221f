import * as ort from 'onnxruntime-node';
import { z } from 'zod';

// How kp-coord runs ONNX Runtime (the training engine and the generator). CUDA needs onnxruntime-node's CUDA EP binaries, which a GPU
// host installs with ONNXRUNTIME_NODE_INSTALL=cuda12 at `npm ci` time (see README).
export const EngineOptionsSchema = z.object({
  intraOpThreads: z.number().int().positive().default(2),
  executionProvider: z.enum(['cpu', 'cuda']).default('cpu'),
  /** Thread-pool spinning burns cores between runs; off when a process holds several sessions. */
  allowSpinning: z.boolean().default(false),
});
export type EngineOptions = z.infer<typeof EngineOptionsSchema>;

export function sessionOptions(o: EngineOptions): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [o.executionProvider],
    intraOpNumThreads: o.intraOpThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: o.allowSpinning ? '1' : '0' } } },
  };
}
