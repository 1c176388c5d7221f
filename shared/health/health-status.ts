import * as grpc from '@grpc/grpc-js';
import {
  HealthCheckResponse_ServingStatus as Status, HealthService, type HealthCheckResponse, type HealthServer,
} from '../../proto/gen/health/health.js';

// The gRPC health checking protocol (grpc.health.v1.Health) over a status table that the
// process sets as its real state changes. Names it answers for:
//   ''         overall readiness (coordinator: config loaded and listening; worker: registered and
//              its engine loaded). Kubernetes readiness probes ask for this one.
//   'liveness' the process is up and its event loop answers; liveness probes ask for this one, so
//              a worker waiting for the other workers is not restarted for being unready.
// The service is unauthenticated on purpose: kubelet probes cannot send the worker token, and it
// reveals nothing but a status.

export const ServingStatus = Status;
export type ServingStatus = Status;

export const READINESS_SERVICE = '';
export const LIVENESS_SERVICE = 'liveness';

export function statusName(s: ServingStatus): string {
  return (Object.keys(Status) as (keyof typeof Status)[]).find((k) => Status[k] === s) ?? `status ${s}`;
}

type Watcher = (s: ServingStatus) => void;

export class HealthStatus {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<Watcher>>();
  private readonly streams = new Set<grpc.ServerWritableStream<unknown, HealthCheckResponse>>();

  /** Readiness starts NOT_SERVING; liveness is SERVING as soon as anyone can ask. */
  constructor() {
    this.statuses.set(READINESS_SERVICE, Status.NOT_SERVING);
    this.statuses.set(LIVENESS_SERVICE, Status.SERVING);
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  set(service: string, status: ServingStatus): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const w of this.watchers.get(service) ?? []) w(status);
  }

  /** Ready (or not) for the overall service. */
  setReady(ready: boolean): void {
    this.set(READINESS_SERVICE, ready ? Status.SERVING : Status.NOT_SERVING);
  }

  /** Shutting down: every service NOT_SERVING, told to watchers, and their streams ended so a
   *  server's graceful shutdown does not wait on them. */
  shutdown(): void {
    for (const service of this.statuses.keys()) this.set(service, Status.NOT_SERVING);
    for (const s of this.streams) s.end();
    this.streams.clear();
  }

  handlers(): HealthServer {
    return {
      check: (call, cb) => {
        const status = this.statuses.get(call.request.service);
        if (status === undefined) cb({ code: grpc.status.NOT_FOUND, details: `unknown service '${call.request.service}'` });
        else cb(null, { status });
      },
      // Per the spec: send the current status at once (SERVICE_UNKNOWN for an unknown name, and
      // keep the stream open in case it appears), then every change, until the client cancels.
      watch: (call) => {
        const service = call.request.service;
        const send: Watcher = (status) => void call.write({ status });
        send(this.statuses.get(service) ?? Status.SERVICE_UNKNOWN);
        let set = this.watchers.get(service);
        if (!set) this.watchers.set(service, (set = new Set()));
        set.add(send);
        this.streams.add(call);
        const done = (): void => {
          set.delete(send);
          this.streams.delete(call);
        };
        call.on('cancelled', done);
        call.on('close', done);
      },
    };
  }

  addTo(server: grpc.Server): void {
    server.addService(HealthService, this.handlers());
  }
}
