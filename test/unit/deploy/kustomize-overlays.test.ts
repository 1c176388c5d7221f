import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { Namespace, ConfigMap, Service, PersistentVolumeClaim } from 'kubernetes-models/v1';
import { StatefulSet } from 'kubernetes-models/apps/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { resolveRunConfig } from '../../../shared/config/resolve-run-config.js';
import { T5_PRESETS } from '../../../shared/models/presets.js';
import { REPO_ROOT } from '../../helpers/sample-cache.js';

// Renders every overlay with `kubectl kustomize`, validates each object against the Kubernetes
// API schema (kubernetes-models' generated validators: types, enums, required fields), and checks
// the contracts between the objects and kp-coord's own flags and run config.

const OVERLAYS = ['local', 'gpu'] as const;
const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
const skip = kubectl.error ? 'kubectl is not installed: cannot render the kustomize overlays' : false;

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [key: string]: unknown;
}
interface Probe { grpc?: { port: number; service?: string }; exec?: { command: string[] } }
interface EnvVar { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } } }
interface Container {
  name: string;
  image: string;
  args: string[];
  env?: EnvVar[];
  ports?: { name: string; containerPort: number }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  resources: { requests: Record<string, string | number>; limits: Record<string, string | number> };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  containers: Container[];
  restartPolicy?: string;
  subdomain?: string;
  nodeSelector?: Record<string, string>;
  tolerations?: { key: string; effect?: string }[];
  securityContext?: { runAsNonRoot?: boolean };
  terminationGracePeriodSeconds?: number;
  affinity?: { podAntiAffinity?: unknown };
  volumes: { name: string; persistentVolumeClaim?: { claimName: string }; secret?: { secretName: string } }[];
}

const VALIDATORS: Record<string, (o: K8sObject) => { validate(): void }> = {
  'v1/Namespace': (o) => new Namespace(o as never),
  'v1/ConfigMap': (o) => new ConfigMap(o as never),
  'v1/Service': (o) => new Service(o as never),
  'v1/PersistentVolumeClaim': (o) => new PersistentVolumeClaim(o as never),
  'apps/v1/StatefulSet': (o) => new StatefulSet(o as never),
  'batch/v1/Job': (o) => new Job(o as never),
};

function render(overlay: string): K8sObject[] {
  const r = spawnSync('kubectl', ['kustomize', join(REPO_ROOT, 'k8s', 'overlays', overlay)], { encoding: 'utf8' });
  assert.equal(r.status, 0, `kubectl kustomize k8s/overlays/${overlay} failed:\n${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject).filter((o) => o !== null);
}

function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name.startsWith(name));
  assert.ok(o, `no ${kind} ${name}`);
  return o;
}

const podSpec = (o: K8sObject): PodSpec => (o as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;

/**
 * A probe that runs `kp-coord health` over mTLS against `port` on loopback, with the container's
 * own --tls-dir, for `service` ('' readiness, 'liveness'). kubelet's gRPC probe cannot show a client
 * certificate, so a plain `grpc:` probe would fail against an mTLS port.
 */
function assertHealthProbe(probe: Probe | undefined, port: number, tlsDir: string | undefined, service: string, what: string): void {
  assert.equal(probe?.grpc, undefined, `${what}: a grpc probe cannot pass mTLS`);
  const cmd = probe?.exec?.command ?? [];
  assert.deepEqual(cmd.slice(0, 3), ['node', '/app/dist/coordinator/cli/main.js', 'health'], `${what}: runs kp-coord health`);
  assert.equal(flag(cmd, 'target'), `127.0.0.1:${port}`, `${what}: target`);
  assert.ok(tlsDir && flag(cmd, 'tls-dir') === tlsDir, `${what}: the container's --tls-dir`);
  assert.equal(flag(cmd, 'service') ?? '', service, `${what}: service`);
}

/** `--name=value` or `--name value` from an argument list. */
function flag(args: readonly string[], name: string): string | undefined {
  const i = args.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (i < 0) return undefined;
  return args[i]!.includes('=') ? args[i]!.slice(args[i]!.indexOf('=') + 1) : args[i + 1];
}

/** The run config as the coordinator reads it, with the workspace volume's paths moved into a
 *  temp folder holding what an operator puts there (a model folder, a data cache). */
function resolveOverlayRunConfig(yamlText: string, overlay: string) {
  const fake = mkdtempSync(join(tmpdir(), `kp-k8s-${overlay}-`));
  try {
    const mkdir = (p: string): string => (mkdirSync(join(fake, p), { recursive: true }), join(fake, p));
    writeFileSync(join(mkdir('models/pko-t5-base'), 'config.json'), JSON.stringify(T5_PRESETS['pko-t5-base']));
    writeFileSync(join(mkdir('data/v4'), 'manifest.json'), '{}');
    const text = yamlText.replaceAll('/workspace/', `${fake}/`);
    const config: unknown = parseAllDocuments(text)[0]!.toJS();
    // Relative paths are taken from the image's working directory, /app, laid out like the repo root.
    return resolveRunConfig(config, { source: `k8s/overlays/${overlay} run.yaml`, baseDir: REPO_ROOT });
  } finally {
    rmSync(fake, { recursive: true, force: true });
  }
}

for (const overlay of OVERLAYS) {
  test(`k8s/overlays/${overlay}: every object is valid against the Kubernetes schema`, { skip }, () => {
    const objects = render(overlay);
    assert.deepEqual([...new Set(objects.map((o) => o.kind))].sort(), ['ConfigMap', 'Job', 'Namespace', 'PersistentVolumeClaim', 'Service', 'StatefulSet']);
    for (const o of objects) {
      const make = VALIDATORS[`${o.apiVersion}/${o.kind}`];
      assert.ok(make, `no validator for ${o.apiVersion} ${o.kind}`);
      assert.doesNotThrow(() => make(o).validate(), `${o.kind} ${o.metadata.name}`);
      if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, 'kp-coord', `${o.kind} ${o.metadata.name} namespace`);
    }
  });

  test(`k8s/overlays/${overlay}: world size, probes, addresses and volumes agree with kp-coord`, { skip }, () => {
    const objects = render(overlay);
    const runConfig = find(objects, 'ConfigMap', 'kp-coord-run-config') as unknown as { data: Record<string, string> };
    const rc = resolveOverlayRunConfig(runConfig.data['run.yaml']!, overlay);

    // World size = the worker Job's pods.
    const job = find(objects, 'Job', 'kp-coord-worker') as unknown as { spec: { parallelism: number; completions: number; completionMode: string } };
    assert.equal(job.spec.completionMode, 'Indexed');
    assert.equal(job.spec.parallelism, rc.worldSize, 'Job parallelism vs run config workers');
    assert.equal(job.spec.completions, rc.worldSize, 'Job completions vs run config workers');

    // Coordinator: a Job of one pod at a time that restarts on a crash and stays finished when its
    // run ends (a Deployment would start a new run into the same output_dir).
    const coordinator = find(objects, 'Job', 'kp-coord-coordinator') as K8sObject & { spec: { completions?: number; parallelism?: number; backoffLimit?: number; podReplacementPolicy?: string; completionMode?: string } };
    const cPod = podSpec(coordinator);
    assert.equal(cPod.restartPolicy, 'OnFailure', 'a crashed coordinator restarts and continues its run');
    assert.equal(coordinator.spec.completions, 1);
    assert.equal(coordinator.spec.parallelism, 1, 'never two coordinators of one run');
    assert.equal(coordinator.spec.podReplacementPolicy, 'Failed', 'no replacement while a deleted pod still runs');
    assert.ok((coordinator.spec.backoffLimit ?? 0) >= 1, 'a crash is retried at least once');
    assert.equal(coordinator.spec.completionMode ?? 'NonIndexed', 'NonIndexed');
    // Listens on the port its Service targets and its probes ask; reads the ConfigMap.
    const c = cPod.containers[0]!;
    assert.equal(c.args[0], 'coordinator');
    const listenPort = Number(flag(c.args, 'listen')!.split(':')[1]);
    assert.equal(c.ports?.find((p) => p.name === 'control')?.containerPort, listenPort);
    // Mutual TLS from the kp-coord-tls Secret, and probes that speak it.
    const cTls = flag(c.args, 'tls-dir');
    assert.ok(!c.args.includes('--insecure-plaintext'));
    const tlsVolume = (pod: PodSpec) => pod.volumes.find((v) => v.secret?.secretName === 'kp-coord-tls')?.name;
    assert.equal(c.volumeMounts?.find((m) => m.name === tlsVolume(cPod))?.mountPath, cTls, 'coordinator mounts the TLS secret at --tls-dir');
    assertHealthProbe(c.readinessProbe, listenPort, cTls, '', 'coordinator readiness');
    assertHealthProbe(c.livenessProbe, listenPort, cTls, 'liveness', 'coordinator liveness');
    assertHealthProbe(c.startupProbe, listenPort, cTls, 'liveness', 'coordinator startup');
    const configMount = c.volumeMounts?.find((m) => m.name === 'run-config')?.mountPath;
    assert.equal(flag(c.args, 'config'), `${configMount}/run.yaml`);
    const service = find(objects, 'Service', 'kp-coord-coordinator') as unknown as K8sObject & { spec: { ports: { port: number; targetPort: string }[]; selector: Record<string, string> } };
    assert.equal(service.spec.ports[0]!.port, listenPort);
    // The Service reaches the Job's pods by their template labels.
    const cLabels = (coordinator as unknown as { spec: { template: { metadata: { labels: Record<string, string> } } } }).spec.template.metadata.labels;
    for (const [k, v] of Object.entries(service.spec.selector)) assert.equal(cLabels[k], v, `Service selector ${k}`);
    assert.ok(Object.keys(service.spec.selector).length > 0, 'the Service selects pods');

    // Workers: reach the coordinator by its Service DNS name, listen on every interface, advertise
    // their pod IP, and serve health where the probes look.
    const wPod = podSpec(job as unknown as K8sObject);
    const w = wPod.containers[0]!;
    assert.equal(w.args[0], 'worker');
    assert.equal(flag(w.args, 'coordinator'), `${service.metadata.name}:${listenPort}`);
    assert.equal(flag(w.args, 'data-listen'), '0.0.0.0');
    assert.equal(flag(w.args, 'advertise-host'), '$(POD_IP)');
    assert.equal(w.env?.find((e) => e.name === 'POD_IP')?.valueFrom?.fieldRef?.fieldPath, 'status.podIP');
    const healthPort = Number(flag(w.args, 'health-port'));
    assert.equal(w.ports?.find((p) => p.name === 'health')?.containerPort, healthPort);
    assert.equal(w.ports?.find((p) => p.name === 'data')?.containerPort, Number(flag(w.args, 'data-port')));
    const wTls = flag(w.args, 'tls-dir');
    assert.ok(!w.args.includes('--insecure-plaintext'));
    assert.equal(w.volumeMounts?.find((m) => m.name === tlsVolume(wPod))?.mountPath, wTls, 'worker mounts the TLS secret at --tls-dir');
    assertHealthProbe(w.readinessProbe, healthPort, wTls, '', 'worker readiness');
    assertHealthProbe(w.livenessProbe, healthPort, wTls, 'liveness', 'worker liveness');
    const headless = find(objects, 'Service', 'kp-coord-workers') as unknown as { spec: { clusterIP: string; publishNotReadyAddresses: boolean } };
    assert.equal(wPod.subdomain, 'kp-coord-workers');
    assert.equal(headless.spec.clusterIP, 'None');
    assert.equal(headless.spec.publishNotReadyAddresses, true, 'peers must resolve workers before they are ready');
    assert.ok(wPod.affinity?.podAntiAffinity, 'workers spread over nodes');
    const wLabels = (job as unknown as { spec: { template: { metadata: { labels: Record<string, string> } } } }).spec.template.metadata.labels;
    assert.ok(Object.entries(service.spec.selector).some(([k, v]) => wLabels[k] !== v), 'the coordinator Service does not select workers');
    // onnxruntime's intra-op threads fit in the CPU the worker is given.
    const threads = Number(flag(w.args, 'threads'));
    assert.ok(threads >= 1 && threads <= Number(w.resources.requests.cpu), `--threads ${threads} vs cpu request ${w.resources.requests.cpu}`);

    // Every pod: non-root, a grace period, requests and limits.
    for (const pod of [cPod, wPod, podSpec(find(objects, 'StatefulSet', 'kp-coord-nats'))]) {
      assert.equal(pod.securityContext?.runAsNonRoot, true);
      assert.ok((pod.terminationGracePeriodSeconds ?? 0) >= 30);
      for (const ctr of pod.containers) {
        for (const r of ['cpu', 'memory']) {
          assert.ok(ctr.resources.requests[r] !== undefined && ctr.resources.limits[r] !== undefined, `${ctr.name} ${r} request and limit`);
        }
      }
    }

    // One ReadWriteMany volume for the coordinator and workers, holding the run's outputs.
    const pvc = find(objects, 'PersistentVolumeClaim', 'kp-coord-workspace') as unknown as K8sObject & { spec: { accessModes: string[] } };
    assert.deepEqual(pvc.spec.accessModes, ['ReadWriteMany']);
    for (const [pod, ctr] of [[cPod, c], [wPod, w]] as const) {
      const vol = pod.volumes.find((v) => v.persistentVolumeClaim?.claimName === pvc.metadata.name);
      assert.ok(vol, `${ctr.name} mounts the workspace`);
      const mount = ctr.volumeMounts?.find((m) => m.name === vol.name)?.mountPath;
      assert.equal(mount, '/workspace');
    }
    assert.ok(runConfig.data['run.yaml']!.includes('output_dir: /workspace/'), 'outputs on the shared volume');

    // NATS: JetStream on a PVC, reached at the URL the run config names.
    const nats = find(objects, 'StatefulSet', 'kp-coord-nats') as unknown as { spec: { serviceName: string; volumeClaimTemplates: unknown[] } };
    assert.equal(nats.spec.volumeClaimTemplates.length, 1);
    assert.equal(rc.config.nats?.url, `nats://${nats.spec.serviceName}:4222`);

    // GPU: one GPU per worker, on GPU nodes, from the CUDA image; none on the local overlay.
    const gpus = w.resources.limits['nvidia.com/gpu'];
    if (overlay === 'gpu') {
      assert.equal(rc.worldSize, 8);
      assert.equal(gpus, 1);
      assert.equal(w.resources.requests['nvidia.com/gpu'], 1);
      assert.ok(wPod.nodeSelector && Object.keys(wPod.nodeSelector).length > 0, 'GPU node selector');
      assert.ok(wPod.tolerations?.some((t) => t.key === 'nvidia.com/gpu' && t.effect === 'NoSchedule'));
      assert.match(w.image, /cuda/);
      assert.equal(flag(w.args, 'execution-provider'), 'cuda');
    } else {
      assert.equal(rc.worldSize, 2);
      assert.equal(gpus, undefined);
      assert.doesNotMatch(w.image, /cuda/);
      assert.equal(flag(w.args, 'execution-provider') ?? 'cpu', 'cpu');
    }
  });

  test(`k8s/overlays/${overlay}: secrets are only referenced, never written`, { skip }, () => {
    const objects = render(overlay);
    assert.equal(objects.filter((o) => o.kind === 'Secret').length, 0, 'no Secret objects in the repo');
    const referenced = new Set<string>();
    for (const o of objects.filter((x) => ['StatefulSet', 'Job'].includes(x.kind))) {
      const pod = podSpec(o);
      for (const v of pod.volumes ?? []) if (v.secret) referenced.add(v.secret.secretName);
      for (const ctr of pod.containers) {
        for (const e of ctr.env ?? []) {
          if (e.valueFrom?.secretKeyRef) referenced.add(e.valueFrom.secretKeyRef.name);
          // A credential's value must come from a secret; only a path to a mounted one may be literal.
          if (/TOKEN|PASSWORD|SECRET|CREDS|USER/u.test(e.name) && !e.name.endsWith('_FILE')) {
            assert.equal(e.value, undefined, `${o.metadata.name}: ${e.name} is a literal`);
          }
        }
        const text = JSON.stringify(ctr.args ?? []);
        assert.doesNotMatch(text, /token|password/iu, `${o.metadata.name}: a credential on the command line`);
      }
    }
    assert.deepEqual([...referenced].sort(), ['kp-coord-nats', 'kp-coord-tls', 'kp-coord-token']);
    for (const cm of objects.filter((o) => o.kind === 'ConfigMap') as unknown as { data: Record<string, string> }[]) {
      for (const text of Object.values(cm.data)) assert.doesNotMatch(text, /password\s*[:=]\s*["']?[^$\s"']/iu, 'a literal password in a ConfigMap');
    }
  });
}

test('k8s/base/nats-server.conf is deploy/nats-server.conf', () => {
  assert.equal(readFileSync(join(REPO_ROOT, 'k8s', 'base', 'nats-server.conf'), 'utf8'), readFileSync(join(REPO_ROOT, 'deploy', 'nats-server.conf'), 'utf8'));
});
