import test from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { authMetadata } from '../../../shared/auth.js';
import { CollectiveError } from '../../../shared/errors.js';
import { paddedFlatSize } from '../../../shared/sharding/flat-shard.js';
import { Phase, PullChunkRequest } from '../../../proto/gen/dataplane/dataplane.js';
import { GrpcDataPlane } from '../../../worker/collectives/grpc-transport.js';
import { inProcessTransports } from '../../../worker/collectives/in-process-transport.js';
import { RingCollective } from '../../../worker/collectives/ring-collective.js';
import { PULL_CHUNK } from '../../../worker/collectives/data-plane-service.js';
import { parseDataPlaneOptions, parsePeers } from '../../../worker/collectives/data-plane-options.js';
import { isServiceError } from '../../../worker/collectives/pull-client.js';
import type { DataPlaneOptionsInput } from '../../../worker/collectives/data-plane-options.js';
import { rankBuffer } from '../../helpers/collective-buffers.js';

// gRPC data planes of N ranks inside this one process, on loopback: the same ring as in-process,
// now over real HTTP/2 streams, plus the server's refusals.

const TOKEN = 'test-token-0123456789';

async function planes(world: number, options: DataPlaneOptionsInput = {}, tokens?: string[]): Promise<GrpcDataPlane[]> {
  return Promise.all(Array.from({ length: world }, (_, r) => GrpcDataPlane.listen(tokens?.[r] ?? TOKEN, options)));
}

function connectAll(ps: GrpcDataPlane[], timeoutMs = 10_000): RingCollective[] {
  const peers = ps.map((p, rank) => ({ rank, host: '127.0.0.1', port: p.port }));
  return ps.map((p, rank) => new RingCollective(p.connect(rank, peers), { timeoutMs }));
}

/** One raw PullChunk call; resolves with its status code and the bytes it streamed. */
function rawPull(port: number, request: PullChunkRequest, metadata: grpc.Metadata): Promise<{ code: grpc.status; details: string; bytes: number }> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = client.makeServerStreamRequest(PULL_CHUNK.path, PULL_CHUNK.requestSerialize, PULL_CHUNK.responseDeserialize, request, metadata);
  let bytes = 0;
  call.on('data', (b: Buffer) => (bytes += b.length));
  return new Promise((resolve) => {
    call.on('error', () => {});
    call.on('status', (s: grpc.StatusObject) => {
      client.close();
      resolve({ code: s.code, details: s.details, bytes });
    });
  });
}

test('gRPC ring allReduce over 3 data planes equals the in-process ring bit for bit, with exact traffic', async () => {
  const world = 3;
  const length = paddedFlatSize(200_003, world);
  const ins = Array.from({ length: world }, (_, r) => rankBuffer(21, r, world, length));
  const want = ins.map((x) => x.slice());
  const local = inProcessTransports(world).map((t) => new RingCollective(t));
  await Promise.all(local.map((c, r) => c.allReduce(want[r]!, 'ref')));

  // Small pieces and the default 64 KiB window: many messages, backpressure actually engaged.
  const ps = await planes(world, { pieceBytes: 16_384, flowControlWindow: null });
  try {
    const ranks = connectAll(ps);
    const got = ins.map((x) => x.slice());
    await Promise.all(ranks.map((c, r) => c.allReduce(got[r]!, 'step-3/grads')));
    for (let r = 0; r < world; r++) {
      assert.deepEqual(got[r], want[r], `rank ${r}`);
      assert.equal(ranks[r]!.bytesSent, (2 * (world - 1) * length * 4) / world);
    }
    // A second operation on the same planes (new tag) works too, and tags keep them apart.
    const again = ins.map((x) => x.slice());
    const other = ins.map((x) => x.map((v) => -v));
    await Promise.all(ranks.flatMap((c, r) => [c.allReduce(again[r]!, 'step-4/grads'), c.allReduce(other[r]!, 'step-4/other')]));
    for (let r = 0; r < world; r++) {
      assert.deepEqual(again[r], want[r]);
      assert.deepEqual(other[r], want[r]!.map((v) => -v));
    }
  } finally {
    await Promise.all(ps.map((p) => p.close()));
  }
});

test('gRPC reduceScatterRange: pieces issued concurrently in descending order equal one in-process reduceScatter bit for bit', async () => {
  const world = 3;
  const length = paddedFlatSize(60_001, world);
  const range = length / world;
  const ins = Array.from({ length: world }, (_, r) => rankBuffer(22, r, world, length));
  const want = ins.map((x) => x.slice());
  await Promise.all(inProcessTransports(world).map((t, r) => new RingCollective(t).reduceScatter(want[r]!, 'ref')));

  // Pieces inside one range, across one boundary, across two, and exactly aligned.
  const cuts = [0, 7, range - 5, range + 1000, 2 * range, 2 * range + 1, length];
  const pieces = cuts.slice(1).map((end, k) => ({ offset: cuts[k]!, end })).reverse();
  const ps = await planes(world, { pieceBytes: 16_384 });
  try {
    const ranks = connectAll(ps);
    const got = ins.map((x) => x.slice());
    await Promise.all(ranks.flatMap((c, r) => pieces.map((p) => c.reduceScatterRange(got[r]!.subarray(p.offset, p.end), p.offset, length, `step-5/grads/${p.offset}`))));
    for (let r = 0; r < world; r++) {
      const own = [r * range, (r + 1) * range] as const;
      assert.deepEqual(new Uint32Array(got[r]!.slice(...own).buffer), new Uint32Array(want[r]!.slice(...own).buffer), `rank ${r}`);
      assert.equal(ranks[r]!.bytesSent, ((world - 1) * length * 4) / world);
    }
  } finally {
    await Promise.all(ps.map((p) => p.close()));
  }
});

test('the data plane refuses calls without the worker token (UNAUTHENTICATED) and checks requests', async () => {
  const [plane] = await planes(1);
  try {
    const port = plane!.port;
    const request = PullChunkRequest.create({ tag: 't', phase: Phase.REDUCE_SCATTER, step: 0, fromRank: 1, world: 2, byteLength: 64 });
    const wrong = await rawPull(port, request, authMetadata('not-the-token-0000000'));
    assert.equal(wrong.code, grpc.status.UNAUTHENTICATED);
    assert.equal(wrong.bytes, 0);
    const none = await rawPull(port, request, new grpc.Metadata());
    assert.equal(none.code, grpc.status.UNAUTHENTICATED);
    const badPhase = await rawPull(port, { ...request, phase: Phase.PHASE_UNSPECIFIED }, authMetadata(TOKEN));
    assert.deepEqual([badPhase.code, badPhase.details], [grpc.status.INVALID_ARGUMENT, 'unknown phase 0']);
    const badLength = await rawPull(port, { ...request, byteLength: 6 }, authMetadata(TOKEN));
    assert.equal(badLength.code, grpc.status.INVALID_ARGUMENT);
    // A valid pull waits for its chunk; a second pull of the same chunk is refused; closing the
    // plane ends the waiting one.
    const pulls = [rawPull(port, request, authMetadata(TOKEN)), rawPull(port, request, authMetadata(TOKEN))];
    const refused = await Promise.race(pulls);
    assert.equal(refused.code, grpc.status.ALREADY_EXISTS);
    await plane!.close();
    assert.deepEqual((await Promise.all(pulls)).map((p) => p.code).sort(), [grpc.status.UNAVAILABLE, grpc.status.ALREADY_EXISTS].sort());
  } finally {
    await plane!.close();
  }
});

test('a rank with another token cannot take part: its pulls fail UNAUTHENTICATED and nobody completes', async () => {
  const ps = await planes(2, {}, [TOKEN, 'intruder-token-99999999']);
  try {
    const ranks = connectAll(ps, 3000);
    const bufs = [new Float32Array(64).fill(1), new Float32Array(64).fill(2)];
    const results = await Promise.allSettled(ranks.map((c, r) => c.allReduce(bufs[r]!, 'step-1/grads')));
    // Rank 1 pulls from rank 0 with the wrong token; rank 0 pulls from rank 1, which refuses the
    // real token. Both report the refusal, from the server's status code.
    for (const [r, result] of results.entries()) {
      assert.equal(result.status, 'rejected', `rank ${r}`);
      const e = (result as PromiseRejectedResult).reason as CollectiveError;
      assert.ok(e instanceof CollectiveError);
      assert.match(e.message, /UNAUTHENTICATED: missing or wrong worker token/);
      const status = e.cause instanceof CollectiveError ? e.cause.cause : e.cause;
      assert.ok(isServiceError(status) && status.code === grpc.status.UNAUTHENTICATED);
    }
    assert.deepEqual(bufs[0], new Float32Array(64).fill(1), "rank 0's buffer never received rank 1's values");
  } finally {
    await Promise.all(ps.map((p) => p.close()));
  }
});

test('a chunk of the wrong size is refused on both sides (FAILED_PRECONDITION)', async () => {
  const ps = await planes(2);
  try {
    const peers = ps.map((p, rank) => ({ rank, host: '127.0.0.1', port: p.port }));
    const [t0, t1] = ps.map((p, r) => p.connect(r, peers));
    const signal = new AbortController().signal;
    const key = { tag: 'size', phase: Phase.ALL_GATHER, step: 0 };
    const [sent, received] = await Promise.allSettled([
      t0!.send(1, key, new Float32Array(32), signal),
      t1!.receive(0, key, new Float32Array(16), 'assign', signal),
    ]);
    assert.equal(sent.status, 'rejected');
    assert.match(String((sent as PromiseRejectedResult).reason), /has 128 bytes; rank 1 expected 64/);
    assert.equal(received.status, 'rejected');
    assert.match(String((received as PromiseRejectedResult).reason), /FAILED_PRECONDITION/);
  } finally {
    await Promise.all(ps.map((p) => p.close()));
  }
});

test('a peer that goes away fails the operation with a CollectiveError instead of hanging', async () => {
  const ps = await planes(3);
  let closed = false;
  try {
    const ranks = connectAll(ps, 1500);
    const length = paddedFlatSize(50_000, 3);
    const bufs = [0, 1, 2].map((r) => rankBuffer(3, r, 3, length));
    const started = Date.now();
    const ops = ranks.slice(0, 2).map((c, r) => c.allReduce(bufs[r]!, 'step-9/grads'));
    await ps[2]!.close();
    closed = true;
    const [rank0, rank1] = await Promise.allSettled(ops);
    // Rank 0 pulls from the closed rank 2 and learns at once; rank 1 offers to rank 2, which never
    // pulls again: only the timeout can tell it (the coordinator's heartbeats catch this sooner).
    assert.equal(rank0!.status, 'rejected');
    assert.match(String((rank0 as PromiseRejectedResult).reason), /rank 0\/3: reduce-scatter "step-9\/grads" failed at step 0: .*from rank 2 .*UNAVAILABLE/);
    assert.equal(rank1!.status, 'rejected');
    assert.match(String((rank1 as PromiseRejectedResult).reason), /rank 1\/3: reduce-scatter "step-9\/grads" failed at step \d: timed out after 1500 ms/);
    assert.ok(Date.now() - started < 10_000, 'failed well before any test timeout');
  } finally {
    await Promise.all(ps.map((p, r) => (r === 2 && closed ? undefined : p.close())));
  }
});

test('options and peers are validated where they enter, naming the field', () => {
  assert.throws(() => parseDataPlaneOptions({ pieceBytes: 1001 }), /pieceBytes: must be a multiple of 4/);
  assert.throws(() => parseDataPlaneOptions({ flowControlWindow: 10 }), /flowControlWindow: /);
  assert.equal(parseDataPlaneOptions({}).flowControlWindow, 16 * 1024 * 1024);
  assert.throws(() => parsePeers([{ rank: 0, host: 'a', port: 1 }, { rank: 2, host: 'b', port: 2 }]), /ranks must be 0\.\.1 once each, got 0,2/);
  assert.throws(() => parsePeers([{ rank: 0, host: '', port: 70000 }]), /0\.host: .*; 0\.port: /);
  assert.deepEqual(parsePeers([{ rank: 1, host: 'b', port: 2 }, { rank: 0, host: 'a', port: 1 }]).map((p) => p.rank), [0, 1]);
});
