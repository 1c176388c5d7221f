import { parentPort, workerData } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import { authMetadata } from '../shared/auth.js';
import { channelCredentials, type TransportSecurity } from '../shared/tls/transport-security.js';
import { CoordinatorClient } from '../proto/gen/control/control.js';
import type { CoordinatorLost, HeartbeatTarget } from './heartbeat-thread.js';

// The body of HeartbeatThread: one Heartbeat call per interval, each with a deadline of one
// interval so a slow coordinator does not pile calls up. A single failure means nothing; no answer
// for the timeout, or ABORTED (this round has ended), is posted once to the main thread.
const target = workerData as HeartbeatTarget;
const sent = target.security ?? { kind: 'plaintext' };
// Structured cloning turned the PEM Buffers into Uint8Arrays; grpc-js wants Buffers.
const security: TransportSecurity = sent.kind === 'mtls' ? { ...sent, ca: Buffer.from(sent.ca), cert: Buffer.from(sent.cert), key: Buffer.from(sent.key) } : sent;
const { credentials, options } = channelCredentials(security);
const client = new CoordinatorClient(target.coordinator, credentials, options);
const md = authMetadata(target.token);
let lastAnswer = Date.now();
let told = false;

function tell(reason: string): void {
  if (told) return;
  told = true;
  parentPort?.postMessage({ reason } satisfies CoordinatorLost);
}

function beat(): void {
  client.heartbeat({ rank: target.rank, round: target.round }, md, { deadline: Date.now() + target.intervalMs }, (err) => {
    if (!err) {
      lastAnswer = Date.now();
      return;
    }
    if (err.code === grpc.status.ABORTED) tell(`heartbeat refused: ${err.details}`);
    else if (Date.now() - lastAnswer > target.timeoutMs) tell(`the coordinator has not answered heartbeats for ${Date.now() - lastAnswer} ms (${err.details})`);
  });
}

beat();
setInterval(beat, target.intervalMs);
