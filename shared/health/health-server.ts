import * as grpc from '@grpc/grpc-js';
import { HealthStatus } from './health-status.js';
import { PLAINTEXT, serverCredentials, type TransportSecurity } from '../tls/transport-security.js';

// A gRPC server with only the health service: a worker's probe endpoint (`--health-port`). The
// coordinator adds the same service to its control-plane server instead.

export class HealthServer {
  private constructor(
    readonly status: HealthStatus,
    readonly port: number,
    private readonly server: grpc.Server,
  ) {}

  /** Bind `host:port` (port 0 picks one). Readiness starts NOT_SERVING. */
  static async listen(host: string, port: number, security: TransportSecurity = PLAINTEXT): Promise<HealthServer> {
    const server = new grpc.Server();
    const status = new HealthStatus();
    status.addTo(server);
    const bound = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${host}:${port}`, serverCredentials(security), (err, p) => (err ? reject(err) : resolve(p)));
    });
    return new HealthServer(status, bound, server);
  }

  async close(): Promise<void> {
    this.status.shutdown();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
  }
}
