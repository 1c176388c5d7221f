import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { REPO_ROOT } from '../../helpers/sample-cache.js';
import { WORKER_GLIBC_TUNABLES, withWorkerMalloc } from '../../../worker/malloc-settings.js';

// The image recipes and the compose file, checked for their contracts (no Docker engine here to
// build them): stages, runtime user, install mode, what is copied, and no secrets.

interface Stage { from: string; name: string; lines: string[] }

/** Instructions per stage, continuation lines joined, comments dropped. */
function stages(file: string): Stage[] {
  const text = readFileSync(join(REPO_ROOT, 'deploy', file), 'utf8').replace(/\\\n/gu, ' ');
  const out: Stage[] = [];
  for (const line of text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/iu.exec(line);
    if (from) out.push({ from: from[1]!, name: from[2] ?? '', lines: [] });
    else out.at(-1)!.lines.push(line);
  }
  return out;
}

const ignored = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

for (const [file, install] of [['Dockerfile', 'skip'], ['Dockerfile.cuda', 'cuda12']] as const) {
  test(`deploy/${file}: multi-stage, runtime deps only, onnxruntime-node install mode ${install}, non-root, no secrets`, () => {
    const all = stages(file);
    assert.ok(all.length >= 3, 'build, deps and runtime stages');
    const runtime = all.at(-1)!;
    const deps = all.find((s) => s.name === 'deps')!;
    assert.ok(deps.lines.includes(`ENV ONNXRUNTIME_NODE_INSTALL=${install}`), `deps stage installs with ${install}`);
    assert.ok(deps.lines.some((l) => /^RUN npm ci --omit=dev\b/u.test(l)), 'npm ci --omit=dev');
    assert.ok(runtime.lines.some((l) => l === 'COPY --from=deps /app/node_modules ./node_modules'), 'runtime takes only the deps stage\'s node_modules');
    assert.ok(!runtime.lines.some((l) => /^RUN npm\b/u.test(l)), 'no npm install in the runtime stage');
    // The last USER is a named non-root user.
    const user = runtime.lines.filter((l) => l.startsWith('USER ')).at(-1);
    assert.equal(user, 'USER node');
    assert.match(runtime.lines.find((l) => l.startsWith('ENTRYPOINT'))!, /dist\/coordinator\/cli\/main\.js/u);
    for (const s of all) {
      assert.doesNotMatch(s.from, /:latest$|^[^:@]+$/u, `${s.name}: a pinned base tag`);
      for (const l of s.lines) {
        assert.doesNotMatch(l, /^(ARG|ENV)\s+\S*(TOKEN|PASSWORD|SECRET|CREDS)/iu, `${s.name}: a secret in ${l}`);
        // Everything copied from the build context exists and is not excluded by .dockerignore.
        const copy = /^COPY\s+(?!--from)(.+)\s+\S+$/u.exec(l);
        for (const src of copy ? copy[1]!.split(/\s+/u) : []) {
          assert.ok(existsSync(join(REPO_ROOT, src)), `${file}: COPY ${src} does not exist`);
          assert.ok(!ignored.includes(src), `${file}: COPY ${src} is excluded by .dockerignore`);
        }
      }
    }
    if (install === 'cuda12') assert.match(runtime.from, /^nvidia\/cuda:12\.[\d.]+-cudnn-runtime-/u);
    // The workers' malloc settings, the same as `kp-coord start` gives its workers.
    assert.ok(runtime.lines.includes(`ENV GLIBC_TUNABLES=${WORKER_GLIBC_TUNABLES}`), 'runtime stage sets the worker malloc settings');
  });
}

test('.dockerignore keeps the repo history, installs, outputs and secrets out of the context', () => {
  for (const entry of ['.git', 'node_modules', 'dist', 'runs', 'deploy/secrets', '**/.env']) assert.ok(ignored.includes(entry), entry);
});

test('deploy/compose.yaml: NATS, a coordinator and 2 workers, wired like the cluster, no literal secrets', () => {
  const text = readFileSync(join(REPO_ROOT, 'deploy', 'compose.yaml'), 'utf8');
  const compose = parse(text, { merge: true }) as { services: Record<string, { command?: string[]; environment?: Record<string, string>; healthcheck?: { test: string[] }; restart?: string }> };
  assert.deepEqual(Object.keys(compose.services).sort(), ['coordinator', 'nats', 'worker-0', 'worker-1']);
  const coordinator = compose.services.coordinator!;
  assert.ok(coordinator.command!.includes('workers=2'), 'world size 2 = the two worker services');
  // Restarted after a crash (it continues the run), never after a finished run ('always' or
  // 'unless-stopped' would start a new one into the same output_dir).
  assert.match(coordinator.restart ?? '', /^on-failure(:\d+)?$/u, 'coordinator restart policy');
  assert.equal(coordinator.command![coordinator.command!.indexOf('--tls-dir') + 1], '/run/secrets/kpcoord-tls', 'the coordinator serves mTLS');
  assert.ok(!text.includes('--insecure-plaintext'), 'no plaintext between containers');
  for (const name of ['worker-0', 'worker-1']) {
    const w = compose.services[name]!;
    const arg = (f: string): string | undefined => w.command![w.command!.indexOf(f) + 1];
    assert.equal(arg('--coordinator'), 'coordinator:50051');
    assert.equal(arg('--data-listen'), '0.0.0.0');
    assert.equal(arg('--advertise-host'), name);
    assert.deepEqual(w.healthcheck!.test.slice(-5), ['health', '--tls-dir', arg('--tls-dir'), '--target', '127.0.0.1:' + arg('--health-port')]);
    assert.equal(arg('--tls-dir'), '/run/secrets/kpcoord-tls', 'mTLS from the mounted secret');
    assert.equal(w.environment!.KPCOORD_TOKEN_FILE, '/run/secrets/kpcoord-token');
  }
  for (const [name, s] of Object.entries(compose.services)) {
    for (const [k, v] of Object.entries(s.environment ?? {})) {
      if (/PASSWORD|TOKEN$/u.test(k)) assert.match(v, /^\$\{[A-Z_]+:\?/u, `${name}: ${k} must come from the environment`);
    }
  }
});

test('worker malloc settings: added to a worker environment, never over the user\'s own GLIBC_TUNABLES', () => {
  assert.equal(withWorkerMalloc({ PATH: '/bin' }).GLIBC_TUNABLES, WORKER_GLIBC_TUNABLES);
  assert.equal(withWorkerMalloc({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=4' }).GLIBC_TUNABLES, 'glibc.malloc.arena_max=4');
  assert.equal(withWorkerMalloc({ GLIBC_TUNABLES: '' }).GLIBC_TUNABLES, '', 'an empty setting is the user\'s choice too');
});
