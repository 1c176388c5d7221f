import test from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { ControlServer } from '../../../coordinator/control-server.js';
import { ControlClient } from '../../../worker/control-client.js';
import { checkHealth } from '../../../shared/health/health-check.js';
import { ServingStatus } from '../../../shared/health/health-status.js';
import { rootLogger } from '../../../shared/log.js';
import { loadMutualTls, PLAINTEXT, tlsDirFiles } from '../../../shared/tls/transport-security.js';
import { GrpcDataPlane, dataPlaneCredentials } from '../../../worker/collectives/grpc-transport.js';
import { RingCollective } from '../../../worker/collectives/ring-collective.js';
import { runToExit, weightDiff } from '../../helpers/kp-coord-process.js';
import { makeCa, makeTlsDir, opensslMissing } from '../../helpers/tls-certs.js';

// Mutual TLS on the control, health and data planes, with real gRPC servers and processes on
// loopback: the right certificates work, plaintext and certificates from another CA are refused,
// bad flag combinations are usage errors (exit 2) and bad files input errors naming them (exit 1).

const TOKEN = 'tls-test-token-0123456789';
const log = rootLogger.child({}, { level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'kp-tls-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const skip = opensslMissing;
let good = '';
let rogue = '';
if (!skip) {
  makeCa(join(dir, 'ca'));
  makeCa(join(dir, 'rogue-ca'), 'someone else');
  good = makeTlsDir(join(dir, 'ca'), join(dir, 'good'));
  rogue = makeTlsDir(join(dir, 'rogue-ca'), join(dir, 'rogue'));
}

test('control and health planes: mTLS works; plaintext and another CA\'s certificate are refused', { skip }, async () => {
  const security = loadMutualTls(tlsDirFiles(good));
  const server = new ControlServer({ token: TOKEN, runId: 't', log, heartbeatIntervalMs: 1000, heartbeatTimeoutMs: 60_000, security });
  const port = await server.listen('127.0.0.1:0');
  const target = `127.0.0.1:${port}`;
  try {
    server.open(1);
    assert.equal(await checkHealth(target, { security }), ServingStatus.SERVING);
    await assert.rejects(checkHealth(target, { security: PLAINTEXT, timeoutMs: 3000 }), /health check of .* failed/);
    await assert.rejects(checkHealth(target, { security: loadMutualTls(tlsDirFiles(rogue)), timeoutMs: 3000 }), /health check of .* failed/);
    const intruder = new ControlClient(target, TOKEN, loadMutualTls(tlsDirFiles(rogue)));
    await assert.rejects(intruder.register({ host: 'h', dataPort: 1, pid: 1, workerId: 'x' }), /UNAVAILABLE/);
    intruder.close();
    // The token still counts on top of the certificate.
    const wrongToken = new ControlClient(target, 'another-token-0123456789', security);
    await assert.rejects(wrongToken.register({ host: 'h', dataPort: 1, pid: 1, workerId: 'x' }), /UNAUTHENTICATED/);
    wrongToken.close();
    const worker = new ControlClient(target, TOKEN, security);
    assert.equal((await worker.register({ host: 'h', dataPort: 1, pid: 1, workerId: 'x' })).rank, 0);
    worker.close();
  } finally {
    await server.close();
  }
});

test('data plane: a ring all-reduce over mTLS gives the plaintext sums; a peer with another CA\'s certificate is refused', { skip }, async () => {
  const security = loadMutualTls(tlsDirFiles(good));
  const planes = await Promise.all([0, 1].map(() => GrpcDataPlane.listen(TOKEN, { host: '127.0.0.1', port: 0 }, dataPlaneCredentials(security))));
  const peers = planes.map((p, rank) => ({ rank, host: '127.0.0.1', port: p.port }));
  try {
    const buffers = [0, 1].map((r) => Float32Array.from({ length: 1024 }, (_, i) => i * (r + 1)));
    const rings = planes.map((p, rank) => new RingCollective(p.connect(rank, peers)));
    await Promise.all(rings.map((ring, r) => ring.allReduce(buffers[r]!, 'tls-test')));
    for (const b of buffers) assert.deepEqual(Array.from(b.subarray(0, 4)), [0, 3, 6, 9]);
  } finally {
    await Promise.all(planes.map((p) => p.close()));
  }
  // A rank holding a rogue certificate cannot pull from a TLS peer.
  const honest = await GrpcDataPlane.listen(TOKEN, { host: '127.0.0.1', port: 0 }, dataPlaneCredentials(security));
  const intruder = await GrpcDataPlane.listen(TOKEN, { host: '127.0.0.1', port: 0 }, dataPlaneCredentials(loadMutualTls(tlsDirFiles(rogue))));
  const both = [{ rank: 0, host: '127.0.0.1', port: honest.port }, { rank: 1, host: '127.0.0.1', port: intruder.port }];
  try {
    const a = new RingCollective(honest.connect(0, both));
    const b = new RingCollective(intruder.connect(1, both));
    const results = await Promise.allSettled([a.allReduce(new Float32Array(64), 'x'), b.allReduce(new Float32Array(64), 'x')]);
    assert.ok(results.every((r) => r.status === 'rejected'), JSON.stringify(results.map((r) => r.status)));
  } finally {
    await Promise.all([honest.close(), intruder.close()]);
  }
});

const SummarySchema = z.object({ steps: z.number(), world_size: z.number() });

test('kp-coord start --tls-dir: coordinator and 2 workers over mTLS reach the plaintext run\'s weights bit for bit', { skip }, async () => {
  const env = { ...process.env, KPCOORD_TOKEN: TOKEN };
  const args = (out: string) => ['start', '--workers', '2', '--threads-per-worker', '1', '--set', `output_dir=${out}`, '--set', 'model=preset:t5-tiny', '--set', 'max_steps=2', '--set', 'per_device_train_batch_size=4', '--set', 'gradient_accumulation_steps=1'];
  const tls = await runToExit([...args(join(dir, 'run-tls')), '--tls-dir', good], { env, timeoutMs: 240_000 });
  assert.equal(tls.code, 0, tls.output);
  const plain = await runToExit(args(join(dir, 'run-plain')), { env, timeoutMs: 240_000 });
  assert.equal(plain.code, 0, plain.output);
  assert.equal(SummarySchema.parse(JSON.parse(readFileSync(join(dir, 'run-tls', 'summary.json'), 'utf8'))).steps, 2);
  assert.ok((await weightDiff(join(dir, 'run-tls', 'final'), join(dir, 'run-plain', 'final'))).identical);
  // The workers ran with the same files: mTLS, not plaintext.
  for (const w of [0, 1]) assert.match(readFileSync(join(dir, 'run-tls', 'logs', `worker-${w}.log`), 'utf8'), /"security":"mtls"/);
  assert.match(readFileSync(join(dir, 'run-plain', 'logs', 'worker-0.log'), 'utf8'), /"security":"plaintext"/);
});

test('flags: no TLS is a usage error, plaintext only on loopback, bad files name the file', { skip }, async () => {
  const env = { ...process.env, KPCOORD_TOKEN: TOKEN };
  const noTls = await runToExit(['coordinator', '--listen', '127.0.0.1:0'], { env, timeoutMs: 30_000 });
  assert.equal(noTls.code, 2, noTls.output);
  assert.match(noTls.output, /no TLS configured: give --tls-dir DIR/);
  const exposed = await runToExit(['worker', '--coordinator', '10.1.2.3:50051', '--insecure-plaintext'], { env, timeoutMs: 30_000 });
  assert.equal(exposed.code, 2, exposed.output);
  assert.match(exposed.output, /--insecure-plaintext on a non-loopback address \(10\.1\.2\.3:50051\)/);
  const both = await runToExit(['health', '--target', '127.0.0.1:1', '--insecure-plaintext', '--tls-dir', good], { env, timeoutMs: 30_000 });
  assert.equal(both.code, 2, both.output);
  const half = await runToExit(['health', '--target', '127.0.0.1:1', '--tls-ca', join(good, 'ca.crt')], { env, timeoutMs: 30_000 });
  assert.equal(half.code, 2, half.output);
  assert.match(half.output, /--tls-cert, --tls-key missing/);
  // A key that is not the certificate's; a certificate from another CA; one without the server name.
  const mixed = join(dir, 'mixed');
  makeTlsDir(join(dir, 'ca'), mixed);
  copyFileSync(join(rogue, 'tls.key'), join(mixed, 'tls.key'));
  const badKey = await runToExit(['health', '--target', '127.0.0.1:1', '--tls-dir', mixed], { env, timeoutMs: 30_000 });
  assert.equal(badKey.code, 1, badKey.output);
  assert.match(badKey.output, /mixed\/tls\.key: this key does not belong to the certificate/);
  const wrongCa = await runToExit(['health', '--target', '127.0.0.1:1', '--tls-dir', good, '--tls-cert', join(rogue, 'tls.crt'), '--tls-key', join(rogue, 'tls.key')], { env, timeoutMs: 30_000 });
  assert.equal(wrongCa.code, 1, wrongCa.output);
  assert.match(wrongCa.output, /rogue\/tls\.crt: not issued by the CA in .*good\/ca\.crt/);
  const otherName = makeTlsDir(join(dir, 'ca'), join(dir, 'other-name'), 'somewhere.example');
  const named = await runToExit(['health', '--target', '127.0.0.1:1', '--tls-dir', otherName], { env, timeoutMs: 30_000 });
  assert.equal(named.code, 1, named.output);
  assert.match(named.output, /other-name\/tls\.crt: does not name "kp-coord"/);
  assert.doesNotMatch(badKey.output + wrongCa.output + named.output, /unexpected error/);
});
