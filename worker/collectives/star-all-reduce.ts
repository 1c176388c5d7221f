import { CollectiveError } from '../../shared/errors.js';
import { Phase } from '../../proto/gen/dataplane/dataplane.js';
import type { ChunkTransport } from './chunk-transport.js';
import { abortAfter, allOrAbort, errorText } from './ring-collective.js';

// The "via the coordinator" aggregation, kept only as the baseline bench/collectives.ts beats: every
// rank sends its whole buffer to rank 0 (standing in for the coordinator), which sums and sends the
// result back. Rank 0 sends (N-1) x and receives (N-1) x the buffer, where a ring rank sends
// 2(N-1)/N x for a whole all-reduce: rank 0's link carries N/2 times a ring rank's traffic. Rank 0 adds the buffers of ranks 1, 2, ..., N-1 to its own in that
// order, one after another, so the result is deterministic.

export async function starAllReduce(transport: ChunkTransport, buf: Float32Array, tag: string, timeoutMs: number): Promise<void> {
  const { rank, world } = transport;
  if (world === 1) return;
  const abort = new AbortController();
  const timeout = abortAfter(timeoutMs);
  const signal = AbortSignal.any([abort.signal, timeout.signal]);
  try {
    if (rank === 0) {
      // gather and sum, in rank order
      for (let from = 1; from < world; from++) await transport.receive(from, { tag, phase: Phase.STAR_GATHER, step: from }, buf, 'sum', signal);
      // broadcast the sum
      const sends: Promise<void>[] = [];
      for (let to = 1; to < world; to++) sends.push(transport.send(to, { tag, phase: Phase.STAR_BROADCAST, step: 0 }, buf, signal));
      await allOrAbort(abort, sends);
    } else {
      await transport.send(0, { tag, phase: Phase.STAR_GATHER, step: rank }, buf, signal);
      await transport.receive(0, { tag, phase: Phase.STAR_BROADCAST, step: 0 }, buf, 'assign', signal);
    }
  } catch (e) {
    throw new CollectiveError(`rank ${rank}/${world}: star all-reduce ${JSON.stringify(tag)} failed: ${errorText(e)}`, { cause: e });
  } finally {
    timeout.clear();
  }
}
