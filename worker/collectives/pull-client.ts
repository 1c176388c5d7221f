import * as grpc from '@grpc/grpc-js';
import { authMetadata } from '../../shared/auth.js';
import { CollectiveError } from '../../shared/errors.js';
import { PullChunkRequest } from '../../proto/gen/dataplane/dataplane.js';
import { combineInto } from './combine.js';
import { describeKey, type ChunkKey, type Combine } from './chunk-transport.js';
import { PULL_CHUNK } from './data-plane-service.js';
import { peerTarget, type DataPlaneOptions, type PeerAddress } from './data-plane-options.js';

// The receiving half: one channel to one peer's data-plane server, pulling chunks into place.
// The receive window (`grpc-node.flow_control_window`) belongs to this side: it is how far the
// sender may run ahead of what this process has read.

export class PullClient {
  private readonly client: grpc.Client;
  /** Aligned staging for 'sum': grpc-js hands pieces at byte offset 5 of its frame, too odd for a Float32Array view. */
  private scratch = new Float32Array(0);

  constructor(
    private readonly peer: PeerAddress,
    private readonly token: string,
    options: DataPlaneOptions,
    credentials = grpc.credentials.createInsecure(),
    tlsOptions: grpc.ChannelOptions = {},
  ) {
    const channelOptions: grpc.ChannelOptions = { ...tlsOptions, 'grpc.max_receive_message_length': options.pieceBytes + 1024 };
    if (options.flowControlWindow !== null) channelOptions['grpc-node.flow_control_window'] = options.flowControlWindow;
    this.client = new grpc.Client(peerTarget(peer), credentials, channelOptions);
  }

  /** Pull the chunk `key` that `peer` offers to rank `rank` of `world`, into `target`. */
  async pull(rank: number, world: number, key: ChunkKey, target: Float32Array, combine: Combine, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const request = PullChunkRequest.create({ tag: key.tag, phase: key.phase, step: key.step, fromRank: rank, world, byteLength: target.byteLength });
    const call = this.client.makeServerStreamRequest<PullChunkRequest, Buffer>(
      PULL_CHUNK.path,
      PULL_CHUNK.requestSerialize,
      PULL_CHUNK.responseDeserialize,
      request,
      authMetadata(this.token),
    );
    const onAbort = () => call.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    const bytes = new Uint8Array(target.buffer, target.byteOffset, target.byteLength);
    let received = 0;
    try {
      for await (const piece of call as AsyncIterable<Buffer>) {
        if (piece.length % 4 !== 0 || received + piece.length > bytes.length) {
          throw new CollectiveError(`piece of ${piece.length} bytes at byte ${received} does not fit the ${bytes.length}-byte chunk`);
        }
        if (combine === 'assign') {
          bytes.set(piece, received);
        } else {
          combineInto(target, received / 4, this.aligned(piece), 'sum');
        }
        received += piece.length;
      }
      if (received !== bytes.length) throw new CollectiveError(`stream ended after ${received} of ${bytes.length} bytes`);
    } catch (e) {
      call.cancel(); // a no-op when the call has already ended; otherwise the server stops streaming
      if (signal.aborted) throw signal.reason;
      const status = isServiceError(e) ? `${grpc.status[e.code]}: ${e.details}` : e instanceof Error ? e.message : String(e);
      throw new CollectiveError(`rank ${rank}: pull of ${describeKey(key)} from rank ${this.peer.rank} at ${peerTarget(this.peer)}: ${status}`, { cause: e });
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  close(): void {
    this.client.close();
  }

  /** The piece as float32 values: a view when aligned, else a copy into reused scratch. */
  private aligned(piece: Buffer): Float32Array {
    const n = piece.length / 4;
    if (piece.byteOffset % 4 === 0) return new Float32Array(piece.buffer, piece.byteOffset, n);
    if (this.scratch.length < n) this.scratch = new Float32Array(n);
    new Uint8Array(this.scratch.buffer, 0, piece.length).set(piece);
    return this.scratch.subarray(0, n);
  }
}

export function isServiceError(e: unknown): e is grpc.ServiceError {
  return e instanceof Error && typeof (e as Partial<grpc.ServiceError>).code === 'number' && 'details' in e;
}
