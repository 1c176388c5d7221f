import test from 'node:test';
import assert from 'node:assert/strict';
import { ControlServer } from '../../../coordinator/control-server.js';
import { WorkerLostError } from '../../../coordinator/worker-lost-error.js';
import { ControlClient } from '../../../worker/control-client.js';
import { HeartbeatThread } from '../../../worker/heartbeat-thread.js';
import { rootLogger } from '../../../shared/log.js';
import type { Command } from '../../../proto/gen/control/control.js';

// Rounds on a real gRPC server (in this process) with real clients: a silent worker is lost,
// an aborted round tells its workers, and calls from an ended round are refused.

const TOKEN = 'round-test-token-0123456789';
const log = rootLogger.child({}, { level: 'silent' });

async function setUp(timeoutMs: number) {
  const server = new ControlServer({ token: TOKEN, runId: 'gen-test', log, heartbeatIntervalMs: 50, heartbeatTimeoutMs: timeoutMs });
  const port = await server.listen('127.0.0.1:0');
  const address = `127.0.0.1:${port}`;
  return { server, client: new ControlClient(address, TOKEN), address };
}

function collect(stream: AsyncIterable<Command>): { commands: string[]; done: Promise<void> } {
  const commands: string[] = [];
  const done = (async () => {
    try {
      for await (const c of stream) commands.push(c.kind?.$case ?? '?');
    } catch {
      // the stream ends with an error status when the server goes away
    }
  })();
  return { commands, done };
}

test('a worker that stops beating is lost after the timeout; the others are told to abort', async () => {
  // 3 s, not less: a's heartbeat thread must start (load grpc-js in a new thread) within the
  // timeout, which took over 400 ms on a 2-core machine at load average 10 (a was lost as well).
  const { server, client, address } = await setUp(3000);
  try {
    server.open(2);
    const a = await client.register({ host: 'h', dataPort: 1, pid: 11, workerId: 'a' });
    const b = await client.register({ host: 'h', dataPort: 2, pid: 12, workerId: 'b' });
    assert.equal(a.round, b.round);
    assert.equal(a.heartbeatIntervalMs, 50);
    const streamA = collect(client.seat(a.rank, a.round).commands());
    collect(client.seat(b.rank, b.round).commands());
    const members = await server.gather(2, null);
    assert.deepEqual(members.map((m) => m.workerId), ['a', 'b']);
    server.seal(2);
    // Only a beats, from its heartbeat thread; b stays silent.
    const told: string[] = [];
    const beats = new HeartbeatThread({ coordinator: address, token: TOKEN, rank: a.rank, round: a.round, intervalMs: 50, timeoutMs: 3000 }, (why) => told.push(why));
    const started = Date.now();
    const pending = server.barrier.wait(1, 0);
    pending.catch(() => undefined); // asserted below
    const lost = await server.lost.catch((e: unknown) => e);
    assert.ok(lost instanceof WorkerLostError, String(lost));
    assert.equal(lost.kind, 'heartbeat');
    assert.deepEqual(lost.members.map((m) => m.workerId), ['b'], 'the silent worker is the lost one');
    assert.ok(Date.now() - started >= 300, 'lost before the timeout');
    await assert.rejects(pending, WorkerLostError);
    server.abort(lost.message);
    await streamA.done;
    assert.deepEqual(streamA.commands, ['abort']);
    // a's heartbeat thread is refused now, and tells its main thread (once).
    const deadline = Date.now() + 5000;
    while (told.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await beats.stop();
    assert.equal(told.length, 1);
    assert.match(told[0]!, /heartbeat refused: round \d+ has ended/);
    // Calls from the ended round are refused; a new round takes registrations again.
    await assert.rejects(client.seat(a.rank, a.round).allReduce('k', [1]), /ABORTED: round \d+ has ended/);
    server.open(1);
    const again = await client.register({ host: 'h', dataPort: 3, pid: 11, workerId: 'a' });
    assert.notEqual(again.round, a.round);
    await assert.rejects(client.register({ host: 'h', dataPort: 4, pid: 12, workerId: 'b' }), /RESOURCE_EXHAUSTED/);
  } finally {
    client.close();
    await server.close();
  }
});

test('a heartbeat thread whose coordinator does not answer tells its main thread after the timeout', async () => {
  const { freePort } = await import('../../helpers/kp-coord-process.js');
  const nobody = `127.0.0.1:${await freePort()}`;
  const told: string[] = [];
  const started = Date.now();
  const beats = new HeartbeatThread({ coordinator: nobody, token: TOKEN, rank: 0, round: 1, intervalMs: 50, timeoutMs: 300 }, (why) => told.push(why));
  try {
    while (told.length === 0 && Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 20));
    assert.equal(told.length, 1);
    assert.match(told[0]!, /has not answered heartbeats for \d+ ms/);
    assert.ok(Date.now() - started >= 300, 'told before the timeout');
  } finally {
    await beats.stop();
  }
});

test('shutdown ends the round like a loss: pending all-reduce and barrier fail, a later send throws the reason', async () => {
  const { server, client } = await setUp(60_000);
  try {
    server.open(2);
    const a = await client.register({ host: 'h', dataPort: 1, pid: 11, workerId: 'a' });
    const b = await client.register({ host: 'h', dataPort: 2, pid: 12, workerId: 'b' });
    collect(client.seat(a.rank, a.round).commands());
    collect(client.seat(b.rank, b.round).commands());
    await server.gather(2, null);
    server.seal(2);
    // Rank 0 waits in an all-reduce that rank 1 never joins; the driver waits on a barrier.
    const reduce = client.seat(a.rank, a.round).allReduce('tokens', [1]).then(() => 'resolved', (e: Error) => e.message);
    const barrier = server.barrier.wait(1, 0).then(() => 'resolved', (e: unknown) => e);
    server.shutdown('the run is over');
    // Both settle (bounded wait: a round left half-ended would keep them pending for ever).
    const pending = Symbol('pending');
    const settled = <T>(p: Promise<T>) => Promise.race([p, new Promise<typeof pending>((r) => setTimeout(() => r(pending), 10_000))]);
    const barrierResult = await settled(barrier);
    assert.ok(barrierResult instanceof WorkerLostError, `barrier: ${String(barrierResult)}`);
    assert.match(barrierResult.message, /shut down: the run is over/);
    assert.match(String(await settled(reduce)), /ABORTED/);
    // A send after shutdown names why, instead of throwing null.
    assert.throws(() => server.send(0, { kind: { $case: 'abort', value: { reason: 'x' } } }), (e: unknown) => e instanceof WorkerLostError && /the run is over/.test(e.message));
    assert.throws(() => server.seal(2), /cannot go from ended to sealed|shut down/);
    server.open(1);
  } finally {
    client.close();
    await server.close();
  }
});
