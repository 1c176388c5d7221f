import test from 'node:test';
import assert from 'node:assert/strict';
import { HealthServer } from '../../../shared/health/health-server.js';
import { checkHealth, HealthCheckError, watchHealth } from '../../../shared/health/health-check.js';
import { LIVENESS_SERVICE, ServingStatus } from '../../../shared/health/health-status.js';

// grpc.health.v1 over a real gRPC server on loopback: Check and Watch as the spec describes them.

test('Check: readiness starts NOT_SERVING, liveness SERVING; unknown services are NOT_FOUND', async () => {
  const server = await HealthServer.listen('127.0.0.1', 0);
  const target = `127.0.0.1:${server.port}`;
  try {
    assert.equal(await checkHealth(target), ServingStatus.NOT_SERVING);
    assert.equal(await checkHealth(target, { service: LIVENESS_SERVICE }), ServingStatus.SERVING);
    server.status.setReady(true);
    assert.equal(await checkHealth(target), ServingStatus.SERVING);
    await assert.rejects(checkHealth(target, { service: 'kp.NoSuchService' }), (e: Error) => e instanceof HealthCheckError && /NOT_FOUND/.test(e.message));
  } finally {
    await server.close();
  }
});

test('Watch: the current status at once, then each change; shutdown sends NOT_SERVING and ends the stream', async () => {
  const server = await HealthServer.listen('127.0.0.1', 0);
  const target = `127.0.0.1:${server.port}`;
  const seen: ServingStatus[] = [];
  let ended = false;
  const first = new Promise<void>((resolve) => {
    void (async () => {
      for await (const s of watchHealth(target)) {
        seen.push(s);
        if (seen.length === 1) resolve();
      }
      ended = true;
    })();
  });
  await first;
  server.status.setReady(true);
  server.status.setReady(true); // no change, no message
  await waitFor(() => seen.length >= 2);
  await server.close();
  await waitFor(() => ended);
  assert.deepEqual(seen, [ServingStatus.NOT_SERVING, ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
});

test('Watch of an unknown service answers SERVICE_UNKNOWN and stays open', async () => {
  const server = await HealthServer.listen('127.0.0.1', 0);
  const abort = new AbortController();
  try {
    const seen: ServingStatus[] = [];
    for await (const s of watchHealth(`127.0.0.1:${server.port}`, { service: 'kp.Later', signal: abort.signal })) {
      seen.push(s);
      abort.abort();
    }
    assert.deepEqual(seen, [ServingStatus.SERVICE_UNKNOWN]);
  } finally {
    await server.close();
  }
});

test('an unreachable target is a HealthCheckError naming it', async () => {
  const server = await HealthServer.listen('127.0.0.1', 0);
  const port = server.port;
  await server.close();
  await assert.rejects(checkHealth(`127.0.0.1:${port}`, { timeoutMs: 2000 }), (e: Error) => e instanceof HealthCheckError && e.message.includes(`127.0.0.1:${port}`));
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}
