import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';
import { REPO_ROOT } from '../../helpers/sample-cache.js';

// deploy/nats-server.conf run by a real nats-server: JetStream on, the password read from the
// environment, clients without it refused. Only the ports and the store folder are moved (a test
// cannot use 4222 or /data).

const probe = spawnSync('nats-server', ['--version'], { encoding: 'utf8' });
const skip = probe.error ? 'nats-server is not installed (.ci/run installs it)' : false;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('deploy/nats-server.conf: JetStream with password auth from the environment', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-nats-conf-'));
  const [port, http] = [await freePort(), await freePort()];
  const conf = readFileSync(join(REPO_ROOT, 'deploy', 'nats-server.conf'), 'utf8')
    .replace(/^port: 4222$/mu, `port: ${port}`)
    .replace(/^http_port: 8222/mu, `http_port: ${http}`)
    .replaceAll('/data/', `${dir}/`);
  assert.ok(conf.includes(`port: ${port}`) && conf.includes(`http_port: ${http}`) && !conf.includes('/data/'), 'the test moved ports and folders');
  writeFileSync(join(dir, 'nats.conf'), conf);
  const env = { ...process.env, NATS_SERVER_NAME: 'test', KPCOORD_NATS_USER: 'kpcoord', KPCOORD_NATS_PASSWORD: 'a-password-from-a-secret' };
  assert.equal(spawnSync('nats-server', ['-c', join(dir, 'nats.conf'), '-t'], { env }).status, 0, 'nats-server -t accepts the config');
  const server = spawn('nats-server', ['-c', join(dir, 'nats.conf')], { env, stdio: 'ignore' });
  try {
    const servers = `127.0.0.1:${port}`;
    let nc = null;
    for (let i = 0; i < 50 && !nc; i++) {
      nc = await connect({ servers, user: 'kpcoord', pass: 'a-password-from-a-secret', reconnect: false }).catch(async (e: Error) => {
        if (!/ECONNREFUSED|CONNECTION_REFUSED/u.test(`${e.message} ${(e as { code?: string }).code}`)) throw e;
        await new Promise((r) => setTimeout(r, 100));
        return null;
      });
    }
    assert.ok(nc, 'connected with the password');
    const info = await (await nc.jetstreamManager()).getAccountInfo();
    assert.ok(info.limits !== undefined, 'JetStream answers');
    await nc.close();
    await assert.rejects(connect({ servers, user: 'kpcoord', pass: 'wrong', reconnect: false }), /AUTHORIZATION_VIOLATION|Authorization/iu);
    await assert.rejects(connect({ servers, reconnect: false }), /AUTHORIZATION_VIOLATION|Authorization/iu);
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
});
