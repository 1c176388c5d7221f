import { workerData } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import { authMetadata } from '../shared/auth.js';
import { CoordinatorClient } from '../proto/gen/control/control.js';
import type { HeartbeatTarget } from './heartbeat-thread.js';

// The body of HeartbeatThread: one Heartbeat call per interval, each with a deadline of one
// interval so a slow coordinator does not pile calls up. Failures are not fatal here: the main
// thread learns of a lost coordinator from its command stream.
const target = workerData as HeartbeatTarget;
const client = new CoordinatorClient(target.coordinator, grpc.credentials.createInsecure());
const md = authMetadata(target.token);

function beat(): void {
  client.heartbeat({ rank: target.rank, generation: target.generation }, md, { deadline: Date.now() + target.intervalMs }, () => undefined);
}

beat();
setInterval(beat, target.intervalMs);
