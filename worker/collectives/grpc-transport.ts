import { endianness } from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { CollectiveError } from '../../shared/errors.js';
import { channelCredentials, serverCredentials, type TransportSecurity } from '../../shared/tls/transport-security.js';
import type { ChunkKey, ChunkTransport, Combine } from './chunk-transport.js';
import { DataPlaneServer } from './data-plane-server.js';
import { parseDataPlaneOptions, parsePeers, type DataPlaneOptions, type DataPlaneOptionsInput, type PeerAddress } from './data-plane-options.js';
import { PullClient } from './pull-client.js';

// A worker's gRPC data plane. Its lifecycle follows registration:
//   const plane = await GrpcDataPlane.listen(token, { host, port: 0 });  // before registering
//   ... register plane.port with the coordinator, get rank and peers back ...
//   const transport = plane.connect(rank, peers);                       // a ChunkTransport
//   const collective = new RingCollective(transport);
// Chunks go receiver-pulls: rank r's client pulls from rank r-1's server (server streaming), so
// the receiving side's flow-control window paces the transfer.

export interface DataPlaneCredentials {
  readonly server?: grpc.ServerCredentials;
  readonly channel?: grpc.ChannelCredentials;
  /** Channel options that go with `channel` (TLS: the server name peers' certificates carry). */
  readonly channelOptions?: grpc.ChannelOptions;
}

/** The data plane's credentials for a TransportSecurity (mTLS both ways, or plaintext). */
export function dataPlaneCredentials(s: TransportSecurity): DataPlaneCredentials {
  const { credentials, options } = channelCredentials(s);
  return { server: serverCredentials(s), channel: credentials, channelOptions: options };
}

export class GrpcDataPlane {
  private transport: GrpcTransport | null = null;

  private constructor(
    private readonly server: DataPlaneServer,
    private readonly token: string,
    private readonly options: DataPlaneOptions,
    private readonly credentials: DataPlaneCredentials,
  ) {}

  /** Start this worker's data-plane server; calls without `token` are refused (UNAUTHENTICATED). */
  static async listen(token: string, input: DataPlaneOptionsInput = {}, credentials: DataPlaneCredentials = {}): Promise<GrpcDataPlane> {
    // Chunks go on the wire as the Float32Array's own bytes; the format is little-endian.
    if (endianness() !== 'LE') throw new CollectiveError('the data plane sends float32 little-endian and needs a little-endian host');
    if (token.length === 0) throw new CollectiveError('data plane: empty worker token');
    const options = parseDataPlaneOptions(input);
    const server = await DataPlaneServer.start(token, options, credentials.server);
    return new GrpcDataPlane(server, token, options, credentials);
  }

  /** The port the server listens on (the one to register). */
  get port(): number {
    return this.server.port;
  }

  /** Join the world the coordinator announced: `peers` lists every rank, this one included. */
  connect(rank: number, peersInput: readonly PeerAddress[]): ChunkTransport {
    if (this.transport) throw new CollectiveError(`data plane on port ${this.port} is already connected as rank ${this.transport.rank}`);
    const peers = parsePeers(peersInput);
    if (!Number.isSafeInteger(rank) || rank < 0 || rank >= peers.length) throw new CollectiveError(`data plane: rank ${rank} is not among the ${peers.length} peers`);
    this.server.setMembership(rank, peers.length);
    const clients = peers.map((p) => (p.rank === rank ? null : new PullClient(p, this.token, this.options, this.credentials.channel, this.credentials.channelOptions)));
    this.transport = new GrpcTransport(rank, peers.length, this.server, clients);
    return this.transport;
  }

  /** Close the clients and the server (pending sends and pulls fail). */
  async close(): Promise<void> {
    this.transport?.closeClients();
    await this.server.close();
  }
}

class GrpcTransport implements ChunkTransport {
  constructor(
    readonly rank: number,
    readonly world: number,
    private readonly server: DataPlaneServer,
    private readonly clients: readonly (PullClient | null)[],
  ) {}

  get bytesSent(): number {
    return this.server.bytesSent;
  }

  async send(to: number, key: ChunkKey, chunk: Float32Array, signal: AbortSignal): Promise<void> {
    this.client(to);
    return this.server.offer(to, key, chunk, signal);
  }

  async receive(from: number, key: ChunkKey, target: Float32Array, combine: Combine, signal: AbortSignal): Promise<void> {
    return this.client(from).pull(this.rank, this.world, key, target, combine, signal);
  }

  async close(): Promise<void> {
    this.closeClients();
    await this.server.close();
  }

  closeClients(): void {
    for (const c of this.clients) c?.close();
  }

  private client(peer: number): PullClient {
    const c = Number.isSafeInteger(peer) ? this.clients[peer] : undefined;
    if (!c) throw new RangeError(`rank ${this.rank}: no peer rank ${peer} in world ${this.world}`);
    return c;
  }
}
