import type { Phase } from '../../proto/gen/dataplane/dataplane.js';

// The one thing a collective algorithm needs from a network: move one chunk of floats from one
// rank to another under a key. The ring uses it only as "send to next / receive from previous";
// the star baseline addresses rank 0. Backends: in-process (unit tests) and gRPC (workers).

/** Names exactly one chunk: (tag, phase, step) of one operation, sent by one rank to one other. */
export interface ChunkKey {
  readonly tag: string;
  readonly phase: Phase;
  readonly step: number;
}

/** What the receiver does with the incoming floats: overwrite its target, or add into it. */
export type Combine = 'assign' | 'sum';

export interface ChunkTransport {
  readonly rank: number;
  readonly world: number;
  /**
   * Offer `chunk` to rank `to` under `key`. Resolves once the whole chunk has been handed to the
   * transport, after which the caller may overwrite it; rejects when `signal` aborts first.
   */
  send(to: number, key: ChunkKey, chunk: Float32Array, signal: AbortSignal): Promise<void>;
  /**
   * Receive the chunk rank `from` offers under `key` into `target` (same length): 'assign' copies
   * it, 'sum' does target[i] += received[i] element by element (so the result does not depend on
   * how the chunk was cut into pieces on the way).
   */
  receive(from: number, key: ChunkKey, target: Float32Array, combine: Combine, signal: AbortSignal): Promise<void>;
  /** Payload bytes sent since creation (protocol framing not counted). */
  readonly bytesSent: number;
  close(): Promise<void>;
}

export function describeKey(key: ChunkKey): string {
  return `${JSON.stringify(key.tag)} phase ${key.phase} step ${key.step}`;
}
