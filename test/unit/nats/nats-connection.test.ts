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
