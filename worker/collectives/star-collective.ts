import { CollectiveError } from '../../shared/errors.js';
import type { ChunkTransport } from './chunk-transport.js';
import type { Collective } from './collective.js';
import { starAllReduce } from './star-all-reduce.js';

// The star aggregation as a Collective, for bench/zero's "P2P vs star" step-time comparison only
// (`kp-coord start --collective star`, ZeRO stage 0). Everything flows through rank 0, standing in
// for the coordinator; it is never the default and supports only what stage 0 needs.
export class StarCollective implements Collective {
  readonly rank: number;
  readonly world: number;

  constructor(
    private readonly transport: ChunkTransport,
    private readonly timeoutMs = 120_000,
  ) {
    this.rank = transport.rank;
    this.world = transport.world;
  }

  get bytesSent(): number {
    return this.transport.bytesSent;
  }

  allReduce(buf: Float32Array, tag: string): Promise<void> {
    return starAllReduce(this.transport, buf, tag, this.timeoutMs);
  }

  reduceScatter(): Promise<void> {
    return Promise.reject(new CollectiveError('the star baseline runs ZeRO stage 0 only (no reduce-scatter)'));
  }

  reduceScatterRange(): Promise<void> {
    return Promise.reject(new CollectiveError('the star baseline runs ZeRO stage 0 only (no reduce-scatter of a range)'));
  }

  allGather(): Promise<void> {
    return Promise.reject(new CollectiveError('the star baseline runs ZeRO stage 0 only (no all-gather)'));
  }

  async close(): Promise<void> {
    await this.transport.close();
  }
}
