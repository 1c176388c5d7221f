import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { natsConnectionOptions } from '../../../coordinator/nats/nats-connection.js';
import { natsUrlOverrides, runNameOverrides } from '../../../coordinator/nats/run-publisher.js';
import { resolveRunConfig } from '../../../shared/config/resolve-run-config.js';

test('credentials and TLS come from the environment; half-given pairs are named', () => {
  assert.deepEqual(natsConnectionOptions({ url: 'nats://h:4222' }, {}), { servers: 'nats://h:4222', name: 'kp-coord' });
  const o = natsConnectionOptions({ url: 'nats://h:4222' }, { KPCOORD_NATS_USER: 'u', KPCOORD_NATS_PASSWORD: 'p', KPCOORD_NATS_TOKEN: 't', KPCOORD_NATS_TLS_CA: '/ca.pem' });
  assert.deepEqual([o.user, o.pass, o.token, o.tls], ['u', 'p', 't', { caFile: '/ca.pem' }]);
  assert.deepEqual(natsConnectionOptions({ url: 'tls://h:4222' }, {}).tls, {});
  assert.throws(() => natsConnectionOptions({ url: 'nats://h' }, { KPCOORD_NATS_USER: 'u' }), /KPCOORD_NATS_USER and KPCOORD_NATS_PASSWORD go together/u);
  assert.throws(() => natsConnectionOptions({ url: 'nats://h' }, { KPCOORD_NATS_CREDS: '/no/such.creds' }), /NATS credentials file \/no\/such\.creds: ENOENT/u);
});

test('a creds file becomes an authenticator', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-nats-creds-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const creds = join(dir, 'x.creds');
  writeFileSync(creds, '-----BEGIN NATS USER JWT-----\neyJ0\n------END NATS USER JWT------\n');
  assert.equal(typeof natsConnectionOptions({ url: 'nats://h', credentialsFile: creds }, {}).authenticator, 'function');
});

test('--nats (or $KPCOORD_NATS_URL) turns publishing on and the run gets a name up front', () => {
  assert.deepEqual(natsUrlOverrides(undefined, {}), []);
  assert.deepEqual(natsUrlOverrides(undefined, { KPCOORD_NATS_URL: 'nats://e:1' }), ['nats.url=nats://e:1']);
  assert.deepEqual(natsUrlOverrides('nats://f:2', { KPCOORD_NATS_URL: 'nats://e:1' }), ['nats.url=nats://f:2']);
  const rc = resolveRunConfig({}, { overrides: natsUrlOverrides('nats://f:2', {}) });
  assert.equal(rc.config.nats?.url, 'nats://f:2');
  assert.ok(!rc.ignored.some((i) => i.key === 'nats'));
  assert.deepEqual(runNameOverrides(rc, new Date('2026-01-02T03:04:05Z')), ['run_name=run-20260102030405']);
  assert.deepEqual(runNameOverrides(resolveRunConfig({})), []);
});

test('kp-coord status against a TCP service that is not NATS exits 1 naming it (silent, or talking HTTP)', async (t) => {
  const { createServer } = await import('node:net');
  const { runToExit } = await import('../../helpers/kp-coord-process.js');
  const sockets = new Set<import('node:net').Socket>();
  const listen = (onConnection: (s: import('node:net').Socket) => void) =>
    new Promise<{ port: number; close: () => void }>((resolve) => {
      const server = createServer((s) => {
        sockets.add(s);
        onConnection(s);
      });
      server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as { port: number }).port, close: () => server.close() }));
    });
  // One that accepts and says nothing (a proxy), one that speaks first but not NATS.
  const silent = await listen(() => undefined);
  const http = await listen((s) => s.write('HTTP/1.1 400 Bad Request\r\n\r\n'));
  t.after(() => {
    for (const s of sockets) s.destroy();
    silent.close();
    http.close();
  });
  // Before the fix the process printed a TIMEOUT and then never exited (the bounded wait kills it).
  const a = await runToExit(['status', '--nats', `nats://127.0.0.1:${silent.port}`], { timeoutMs: 60_000 });
  assert.equal(a.code, 1, a.output);
  assert.match(a.output, /is not a NATS server: it sent no INFO line within 5000 ms/u);
  const b = await runToExit(['status', '--nats', `nats://127.0.0.1:${http.port}`], { timeoutMs: 60_000 });
  assert.equal(b.code, 1, b.output);
  assert.match(b.output, /is not a NATS server: it answered "HTTP\/1\.1 400/u);
});
