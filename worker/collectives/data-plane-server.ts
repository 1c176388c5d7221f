import * as grpc from '@grpc/grpc-js';
import { RefusalLog } from '../../shared/refusal-log.js';
import { hasToken } from '../../shared/auth.js';
import { CollectiveError } from '../../shared/errors.js';
import { rootLogger, type Logger } from '../../shared/log.js';
import { Phase, type PullChunkRequest } from '../../proto/gen/dataplane/dataplane.js';
import { describeKey, type ChunkKey } from './chunk-transport.js';
import { RAW_DATA_PLANE_SERVICE, type PullChunkCall } from './data-plane-service.js';
import { peerTarget, type DataPlaneOptions } from './data-plane-options.js';

// The serving half of a worker's data plane: chunks this rank offers wait here until the rank they
// are for pulls them (or a pull waits until the chunk is offered), then stream out in pieces.
//
// [Note: rendezvous] An offer and a pull meet under the id (to, tag, phase, step). Whichever comes
// first waits for the other, so ranks need no barrier between steps. A chunk is streamed straight
// from the caller's Float32Array (no copy until grpc-js frames each piece), so an offer resolves
// only after the last piece has been handed to grpc-js; the caller may then overwrite the range.

interface Offer {
  readonly key: ChunkKey;
  readonly to: number;
  readonly bytes: Buffer;
  readonly signal: AbortSignal;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

interface StatusError {
  code: grpc.status;
  details: string;
}

export class DataPlaneServer {
  /** Payload bytes handed to grpc-js for sending. */
  bytesSent = 0;
  /** Offers no pull has asked for yet; `stopWaiting` detaches the abort listener once one does. */
  private readonly offers = new Map<string, { offer: Offer; stopWaiting: () => void }>();
  private readonly pulls = new Map<string, PullChunkCall>();
  private membership: { rank: number; world: number } | null = null;
  private closed: Promise<void> | null = null;
  private readonly log: Logger;
  private readonly refusals: RefusalLog;

  private constructor(
    private readonly server: grpc.Server,
    readonly port: number,
    private readonly token: string,
    private readonly options: DataPlaneOptions,
  ) {
    this.log = rootLogger.child({ component: 'data-plane', port });
    this.refusals = new RefusalLog(this.log, 'data-plane call without a valid worker token refused');
  }

  static async start(token: string, options: DataPlaneOptions, credentials = grpc.ServerCredentials.createInsecure()): Promise<DataPlaneServer> {
    const server = new grpc.Server();
    let self: DataPlaneServer | null = null;
    server.addService(RAW_DATA_PLANE_SERVICE, {
      pullChunk: (call: PullChunkCall) => {
        if (self) self.onPull(call);
        else fail(call, { code: grpc.status.UNAVAILABLE, details: 'data plane is starting' });
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(peerTarget(options), credentials, (err, bound) => (err ? reject(err) : resolve(bound))),
    ).catch((e: unknown) => {
      throw new CollectiveError(`data plane: cannot listen on ${peerTarget(options)}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    });
    self = new DataPlaneServer(server, port, token, options);
    return self;
  }

  /** This rank's place in the world; set once the coordinator has assigned it. */
  setMembership(rank: number, world: number): void {
    if (this.membership) throw new CollectiveError(`data plane on port ${this.port}: membership is already set (rank ${this.membership.rank} of ${this.membership.world}); start a new data plane for a new world`);
    this.membership = Object.freeze({ rank, world });
    this.log.debug({ rank, world }, 'data plane joined its world');
  }

  /** Offer `chunk` to rank `to`; resolves once every piece is handed to grpc-js. */
  offer(to: number, key: ChunkKey, chunk: Float32Array, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    if (this.closed) return Promise.reject(new CollectiveError(`data plane on port ${this.port} is closed`));
    const id = rendezvousId(to, key);
    if (this.offers.has(id)) return Promise.reject(new CollectiveError(`chunk ${describeKey(key)} to rank ${to} offered twice`));
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    return new Promise<void>((resolve, reject) => {
      const offer: Offer = { key, to, bytes, signal, resolve, reject };
      const pull = this.pulls.get(id);
      if (pull) {
        this.pulls.delete(id);
        this.serve(pull, offer);
        return;
      }
      const onAbort = () => {
        this.offers.delete(id);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.offers.set(id, { offer, stopWaiting: () => signal.removeEventListener('abort', onAbort) });
    });
  }

  /** Fail what is pending and stop serving; idempotent. */
  close(): Promise<void> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<void> {
    const closed = new CollectiveError(`data plane on port ${this.port} closed`);
    for (const { offer, stopWaiting } of this.offers.values()) {
      stopWaiting();
      offer.reject(closed);
    }
    this.offers.clear();
    for (const pull of this.pulls.values()) fail(pull, { code: grpc.status.UNAVAILABLE, details: closed.message });
    this.pulls.clear();
    await new Promise<void>((resolve) => {
      // Streams in flight get a moment to finish; then the server closes regardless.
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 1000);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }

  private onPull(call: PullChunkCall): void {
    if (!hasToken(call.metadata, this.token)) {
      this.refusals.refused({ peer: call.getPeer() });
      fail(call, { code: grpc.status.UNAUTHENTICATED, details: 'missing or wrong worker token' });
      return;
    }
    const request = call.request;
    const invalid = this.checkRequest(request);
    if (invalid) {
      fail(call, { code: grpc.status.INVALID_ARGUMENT, details: invalid });
      return;
    }
    const key: ChunkKey = { tag: request.tag, phase: request.phase, step: request.step };
    const id = rendezvousId(request.fromRank, key);
    const waiting = this.offers.get(id);
    if (waiting) {
      this.offers.delete(id);
      waiting.stopWaiting();
      this.serve(call, waiting.offer);
      return;
    }
    if (this.pulls.has(id)) {
      fail(call, { code: grpc.status.ALREADY_EXISTS, details: `chunk ${describeKey(key)} for rank ${request.fromRank} is already being pulled` });
      return;
    }
    this.pulls.set(id, call);
    call.on('cancelled', () => {
      if (this.pulls.get(id) === call) this.pulls.delete(id);
    });
  }

  /** What is wrong with a request in itself, or null; checked on arrival and again when it meets its offer. */
  private checkRequest(r: PullChunkRequest): string | null {
    if (r.phase === Phase.PHASE_UNSPECIFIED || !Object.values(Phase).includes(r.phase)) return `unknown phase ${r.phase}`;
    if (r.byteLength % 4 !== 0) return `byte_length ${r.byteLength} is not whole float32 values`;
    if (r.world < 2 || r.fromRank >= r.world) return `rank ${r.fromRank} of world ${r.world}`;
    const m = this.membership;
    if (m && r.world !== m.world) return `world ${r.world} differs from this data plane's world ${m.world}`;
    if (m && r.fromRank === m.rank) return `rank ${r.fromRank} pulled from itself`;
    return null;
  }

  /** Stream the offered chunk to the pull that asked for it, piece by piece, with backpressure. */
  private serve(call: PullChunkCall, offer: Offer): void {
    const { bytes, signal } = offer;
    // A pull that arrived before this rank knew its world is checked against it now.
    const invalid = this.checkRequest(call.request);
    if (invalid) {
      fail(call, { code: grpc.status.INVALID_ARGUMENT, details: invalid });
      offer.reject(new CollectiveError(`rank ${offer.to} pulled ${describeKey(offer.key)} with a bad request: ${invalid}`));
      return;
    }
    if (call.request.byteLength !== bytes.length) {
      const details = `chunk ${describeKey(offer.key)} has ${bytes.length} bytes; rank ${offer.to} expected ${call.request.byteLength}`;
      fail(call, { code: grpc.status.FAILED_PRECONDITION, details });
      offer.reject(new CollectiveError(details));
      return;
    }
    const stop = new AbortController();
    const gone = new Promise<never>((_, reject) => {
      call.once('cancelled', () => reject(new CollectiveError(`rank ${offer.to} cancelled its pull of ${describeKey(offer.key)}`)));
      const onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      stop.signal.addEventListener('abort', () => signal.removeEventListener('abort', onAbort), { once: true });
    });
    gone.catch(() => {});
    const streamed = (async () => {
      const piece = this.options.pieceBytes;
      for (let at = 0; at < bytes.length; at += piece) {
        const part = bytes.subarray(at, at + piece);
        this.bytesSent += part.length;
        // write() returns false once grpc-js holds its high-water mark of pieces: wait for 'drain'.
        if (!call.write(part)) await Promise.race([new Promise((resolve) => call.once('drain', resolve)), gone]);
      }
      // 'finish' fires after grpc-js has framed (copied) every piece: the range is free again.
      const finished = new Promise((resolve) => call.once('finish', resolve));
      call.end();
      await Promise.race([finished, gone]);
    })();
    streamed.then(
      () => {
        stop.abort();
        offer.resolve();
      },
      (e: unknown) => {
        stop.abort();
        if (!call.cancelled) fail(call, { code: grpc.status.ABORTED, details: `sender aborted: ${e instanceof Error ? e.message : String(e)}` });
        offer.reject(e);
      },
    );
  }
}

function rendezvousId(to: number, key: ChunkKey): string {
  return JSON.stringify([to, key.tag, key.phase, key.step]);
}

/** End a server-streaming call with an error status (grpc-js sends the status on 'error'). */
function fail(call: PullChunkCall, status: StatusError): void {
  call.emit('error', status);
}
