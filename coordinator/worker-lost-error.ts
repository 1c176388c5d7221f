import { KpCoordError } from '../shared/errors.js';
import type { Member } from './control-server.js';

/**
 * A round ended because a worker was lost: its command stream closed (the process died),
 * its heartbeats stopped (stopped, or its host gone), or the coordinator aborted the round.
 * The run can continue from its last checkpoint; `members` are who was lost (none when aborted).
 */
export class WorkerLostError extends KpCoordError {
  constructor(
    readonly members: readonly Member[],
    readonly kind: 'disconnected' | 'heartbeat' | 'aborted',
    message: string,
  ) {
    super(message);
  }
}

/**
 * A worker reported a failed command (its own error, or a peer that vanished under it). `fatal`:
 * the worker judged that the same inputs fail the same way again (a truncated weights file), so a
 * restart cannot help.
 */
export class WorkerFailedError extends KpCoordError {
  constructor(
    readonly rank: number,
    message: string,
    readonly fatal = false,
  ) {
    super(message);
  }
}
