import * as ort from 'onnxruntime-node';
import { z } from 'zod';

// How kp-coord runs ONNX Runtime (the training engine and the generator). CUDA needs onnxruntime-node's CUDA EP binaries, which a GPU
// host installs with ONNXRUNTIME_NODE_INSTALL=cuda12 at `npm ci` time (see README).
export const EngineOptionsSchema = z.object({
  intraOpThreads: z.number().int().positive().default(2),
  executionProvider: z.enum(['cpu', 'cuda']).default('cpu'),
  /** Thread-pool spinning burns cores between runs; off when a process holds several sessions. */
  allowSpinning: z.boolean().default(false),
  /**
   * onnxruntime's CPU memory arena (`enableCpuMemArena`): keeps freed blocks for reuse; off, every
   * tensor is malloc'ed and freed. Measured by bench/engine on the training step: on is smaller.
   */
  memoryArena: z.boolean().default(true),
  /**
   * onnxruntime's memory pattern (`enableMemPattern`): plans one block for a run's tensors from
   * its input shapes and caches a plan per shape. Off: the training step's peak fell from 2.8 to
   * 1.8 GB above the forward's on pko-t5-base, from 1.0 to 0.6 GB on t5-small-bytes 835/64 x 4
   * (bench/engine), and a run with many batch lengths no longer keeps a block per length.
   */
  memoryPattern: z.boolean().default(false),
  /** Write onnxruntime's own profile (Chrome trace JSON, one event per kernel) to `<prefix>_<time>.json`. */
  profileFilePrefix: z.string().min(1).optional(),
});
export type EngineOptions = z.infer<typeof EngineOptionsSchema>;

/**
 * [Note: flush-to-zero]
 * Every session flushes subnormal floats (below 1.18e-38 in float32) to zero
 * (`session.set_denormal_as_zero`, which sets the CPU's FTZ and DAZ flags on ORT's threads). With
 * a peaked softmax, most probabilities in the logits' gradient are subnormal, and x86 GEMMs that
 * read subnormals run 7-30x slower (pko-t5-base: the lm_head weight gradient took 3.6 s instead of
 * 0.5 s). Flushing changes only values below 1.18e-38: each one is smaller than the rounding error
 * of any gradient entry above 1e-31 it is summed into, so no loss or update moves measurably (the
 * float64 finite-difference and float32-vs-float64 engine tests hold unchanged). ORT sets the
 * flags on the calling thread too, once, with the first session of the process: that is Node's
 * main thread, so from then on JS float32 stores there flush as well (an Adam moment below 2^-126
 * becomes 0; against eps = 1e-8 in the update it never mattered). Every kp-coord session takes its
 * options from here, so every thread of every process agrees and results stay deterministic.
 */
export function sessionOptions(o: EngineOptions): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [o.executionProvider],
    intraOpNumThreads: o.intraOpThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    enableCpuMemArena: o.memoryArena,
    enableMemPattern: o.memoryPattern,
    extra: { session: { intra_op: { allow_spinning: o.allowSpinning ? '1' : '0' }, set_denormal_as_zero: '1' } },
    ...(o.profileFilePrefix ? { enableProfiling: true, profileFilePrefix: o.profileFilePrefix } : {}),
  };
}
