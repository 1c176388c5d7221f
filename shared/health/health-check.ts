import * as grpc from '@grpc/grpc-js';
import { KpCoordError } from '../errors.js';
import { channelCredentials, PLAINTEXT, type TransportSecurity } from '../tls/transport-security.js';
import { HealthClient } from '../../proto/gen/health/health.js';
import type { ServingStatus } from './health-status.js';

// Client side of grpc.health.v1.Health: what `kp-coord health` and the tests use.

export class HealthCheckError extends KpCoordError {}

export interface HealthCheckOptions {
  readonly service?: string;
  readonly timeoutMs?: number;
  readonly security?: TransportSecurity;
}

function healthClient(target: string, security: TransportSecurity = PLAINTEXT): HealthClient {
  const { credentials, options } = channelCredentials(security);
  return new HealthClient(target, credentials, options);
}

/** One Check call. Throws HealthCheckError if the target cannot be reached or does not know the service. */
export function checkHealth(target: string, o: HealthCheckOptions = {}): Promise<ServingStatus> {
  const client = healthClient(target, o.security);
  const deadline = new Date(Date.now() + (o.timeoutMs ?? 5000));
  return new Promise<ServingStatus>((resolve, reject) => {
    client.check({ service: o.service ?? '' }, new grpc.Metadata(), { deadline }, (err, res) => {
      client.close();
      if (err) reject(new HealthCheckError(`health check of ${target} failed: ${grpc.status[err.code] ?? err.code} ${err.details}`, { cause: err }));
      else resolve(res.status);
    });
  });
}

/** Watch: every status the target reports, until it ends the stream or `signal` aborts. */
export async function* watchHealth(target: string, o: { service?: string; signal?: AbortSignal; security?: TransportSecurity } = {}): AsyncGenerator<ServingStatus> {
  const client = healthClient(target, o.security);
  const call = client.watch({ service: o.service ?? '' });
  const abort = (): void => call.cancel();
  o.signal?.addEventListener('abort', abort);
  try {
    for await (const res of call as AsyncIterable<{ status: ServingStatus }>) yield res.status;
  } catch (err) {
    if ((err as grpc.ServiceError).code === grpc.status.CANCELLED && o.signal?.aborted) return;
    const e = err as grpc.ServiceError;
    throw new HealthCheckError(`health watch of ${target} ended: ${grpc.status[e.code] ?? e.code} ${e.details}`, { cause: err });
  } finally {
    o.signal?.removeEventListener('abort', abort);
    call.cancel();
    client.close();
  }
}
