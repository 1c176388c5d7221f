// Named errors for the whole project (one file, like nats.js `errors.ts`): callers branch on the
// class, people read the message, and `cause` keeps the underlying failure.

export class KpCoordError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A graph was built wrongly: wrong shapes, dtypes or attributes. Names the op and shapes. */
export class GraphBuildError extends KpCoordError {}

/** Autodiff met an op with no gradient rule, or a rule returned the wrong number of gradients. */
export class MissingGradientError extends KpCoordError {}

/** A user-supplied file (config, data, weights, batch) is malformed. Names the file and field. */
export class InputFileError extends KpCoordError {
  constructor(
    readonly file: string,
    readonly where: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}${where ? `:${where}` : ''}: ${detail}`, options);
  }
}

/** An output path cannot be used: not writable, not a folder, or not ours to replace. Names the path. */
export class OutputPathError extends KpCoordError {
  constructor(
    readonly path: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${detail}`, options);
  }
}

/** Weights do not fit the model: missing or extra tensors, wrong shapes. */
export class WeightsMismatchError extends KpCoordError {}

/** onnxruntime failed to create or run a session. */
export class EngineError extends KpCoordError {}

/** Optimizer inputs do not fit together: buffer lengths, ranges, layout entries, step counts. */
export class OptimizerError extends KpCoordError {}

/** The global gradient norm is NaN or infinite; every rank sees the same sum, so all skip the step. */
export class NonFiniteGradientError extends KpCoordError {}

/** A collective (reduce-scatter, all-gather) failed: a peer refused or dropped a chunk, or it timed out. */
export class CollectiveError extends KpCoordError {}

/** A NATS event could not be published, read or understood (unreachable server, unknown run, bad message). */
export class EventError extends KpCoordError {}
