import * as grpc from '@grpc/grpc-js';
import { authMetadata } from '../shared/auth.js';
import {
  CoordinatorClient, type Command, type RegisterReply, type RegisterRequest, type WorkerReport,
} from '../proto/gen/control/control.js';

// The worker's side of the control plane: promise-returning calls with the token attached.
export class ControlClient {
  private readonly client: CoordinatorClient;
  private readonly md: grpc.Metadata;

  constructor(address: string, token: string) {
    this.client = new CoordinatorClient(address, grpc.credentials.createInsecure());
    this.md = authMetadata(token);
  }

  register(req: RegisterRequest): Promise<RegisterReply> {
    return new Promise((resolve, reject) => this.client.register(req, this.md, (e, r) => (e ? reject(e) : resolve(r))));
  }

  allReduce(rank: number, key: string, values: number[]): Promise<number[]> {
    return new Promise((resolve, reject) => this.client.allReduce({ rank, key, values }, this.md, (e, r) => (e ? reject(e) : resolve(r.values))));
  }

  report(report: Partial<WorkerReport> & Pick<WorkerReport, 'rank' | 'kind'>): Promise<void> {
    const full: WorkerReport = {
      step: 0, lossSum: 0, tokenCount: 0, gradNorm: 0, lr: 0, seconds: 0, detail: '', rssBytes: 0, bytesSent: 0, samples: 0, ...report,
    };
    return new Promise((resolve, reject) => this.client.report(full, this.md, (e) => (e ? reject(e) : resolve())));
  }

  /** The command stream, as an async iterable that ends when the coordinator ends it. */
  commands(rank: number): AsyncIterable<Command> {
    const call = this.client.commands({ rank }, this.md);
    return call as AsyncIterable<Command>;
  }

  close(): void {
    this.client.close();
  }
}
