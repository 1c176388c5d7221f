import * as grpc from '@grpc/grpc-js';
import { authMetadata } from '../shared/auth.js';
import type { ShardFile } from '../shared/checkpoint/range-shard.js';
import { channelCredentials, PLAINTEXT, type TransportSecurity } from '../shared/tls/transport-security.js';
import {
  CoordinatorClient, type Command, type RegisterReply, type RegisterRequest, type WorkerReport,
} from '../proto/gen/control/control.js';

// The worker's side of the control plane: promise-returning calls with the token attached.
// Registration gives a seat (rank in one round); every later call goes through the seat, so
// it names its round and a late call from an ended one is refused by the coordinator.
export class ControlClient {
  private readonly client: CoordinatorClient;
  private readonly md: grpc.Metadata;

  constructor(address: string, token: string, security: TransportSecurity = PLAINTEXT) {
    const { credentials, options } = channelCredentials(security);
    this.client = new CoordinatorClient(address, credentials, options);
    this.md = authMetadata(token);
  }

  register(req: RegisterRequest): Promise<RegisterReply> {
    return new Promise((resolve, reject) => this.client.register(req, this.md, (e, r) => (e ? reject(e) : resolve(r))));
  }

  seat(rank: number, round: number): WorkerSeat {
    return new WorkerSeat(this.client, this.md, rank, round);
  }

  close(): void {
    this.client.close();
  }
}

/** A report's fields; `shardFile` is the checkpoint's own ShardFile, turned into the proto one here. */
export type ReportFields = Partial<Omit<WorkerReport, 'rank' | 'round' | 'shardFile'>> & Pick<WorkerReport, 'kind'> & { shardFile?: ShardFile };

export class WorkerSeat {
  constructor(
    private readonly client: CoordinatorClient,
    private readonly md: grpc.Metadata,
    readonly rank: number,
    readonly round: number,
  ) {}

  allReduce(key: string, values: number[]): Promise<number[]> {
    const req = { rank: this.rank, round: this.round, key, values };
    return new Promise((resolve, reject) => this.client.allReduce(req, this.md, (e, r) => (e ? reject(e) : resolve(r.values))));
  }

  report(report: ReportFields): Promise<void> {
    const full: WorkerReport = {
      step: 0, lossSum: 0, tokenCount: 0, gradNorm: 0, lr: 0, seconds: 0, detail: '', rssBytes: 0, bytesSent: 0, samples: 0, fatal: false,
      ...report, shardFile: report.shardFile && { ...report.shardFile, ranges: report.shardFile.ranges.map((r) => ({ start: r.start, end: r.end })) },
      rank: this.rank, round: this.round,
    };
    return new Promise((resolve, reject) => this.client.report(full, this.md, (e) => (e ? reject(e) : resolve())));
  }

  /** The command stream: commands as 'data' events, until the coordinator ends it (or is gone). */
  commands(): grpc.ClientReadableStream<Command> {
    return this.client.commands({ rank: this.rank, round: this.round }, this.md);
  }
}
