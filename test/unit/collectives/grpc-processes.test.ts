import test from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { authMetadata } from '../../../shared/auth.js';
import { paddedFlatSize } from '../../../shared/sharding/flat-shard.js';
import { Phase, PullChunkRequest } from '../../../proto/gen/dataplane/dataplane.js';
import { inProcessTransports } from '../../../worker/collectives/in-process-transport.js';
import { RingCollective } from '../../../worker/collectives/ring-collective.js';
import { PULL_CHUNK } from '../../../worker/collectives/data-plane-service.js';
import { rankBuffer } from '../../helpers/collective-buffers.js';
import { RingProcs } from '../../helpers/collective-procs.js';

// Real worker processes (test/helpers/collective-worker.ts) on loopback, each with its own gRPC
// data plane, against the in-process ring computed here.

const TOKEN = 'process-test-token-42';
const SEED = 8;

for (const world of [2, 3]) {
  test(`allReduce of a 4 MiB buffer across ${world} worker processes equals the in-process ring bit for bit`, { timeout: 60_000 }, async () => {
    const length = paddedFlatSize(1_000_003, world);
    const want = Array.from({ length: world }, (_, r) => rankBuffer(SEED, r, world, length));
    await Promise.all(inProcessTransports(world).map((t, r) => new RingCollective(t).allReduce(want[r]!, 'ref')));

    const procs = await RingProcs.start({ tokens: Array<string>(world).fill(TOKEN) });
    try {
      const ran = await procs.run({ op: 'allReduce', tag: 'step-1/grads', seed: SEED, length, repeats: 1, returnResult: true });
      for (const [r, m] of ran.entries()) {
        assert.deepEqual(m.result, want[r], `rank ${r}`);
        assert.equal(m.bytesSent, (2 * (world - 1) * length * 4) / world, `rank ${r} bytes sent`);
      }
    } finally {
      await procs.stop();
    }
  });
}

test('worker processes refuse a wrong token with UNAUTHENTICATED, and a stranger cannot join a ring', { timeout: 60_000 }, async () => {
  const procs = await RingProcs.start({ tokens: [TOKEN, 'stranger-token-000000'], timeoutMs: 5000 });
  const client = new grpc.Client(`127.0.0.1:${procs.ports[0]}`, grpc.credentials.createInsecure());
  try {
    const request = PullChunkRequest.create({ tag: 'x', phase: Phase.ALL_GATHER, step: 0, fromRank: 1, world: 2, byteLength: 4 });
    const call = client.makeServerStreamRequest(PULL_CHUNK.path, PULL_CHUNK.requestSerialize, PULL_CHUNK.responseDeserialize, request, authMetadata('wrong-token-123456789'));
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      call.on('error', () => {});
      call.on('status', resolve);
    });
    assert.equal(status.code, grpc.status.UNAUTHENTICATED);

    const results = await procs.runSettled({ op: 'allReduce', tag: 'step-1/grads', seed: SEED, length: 64, repeats: 1, returnResult: false });
    for (const [r, result] of results.entries()) {
      assert.equal(result.status, 'rejected', `rank ${r}`);
      assert.match(String((result as PromiseRejectedResult).reason), /UNAUTHENTICATED/);
    }
  } finally {
    client.close();
    await procs.stop();
  }
});
