import { availableParallelism, hostname } from 'node:os';
import type { Argv } from 'yargs';
import { tokenFromEnv } from '../../../shared/auth.js';
import { HealthServer } from '../../../shared/health/health-server.js';
import { rootLogger } from '../../../shared/log.js';
import { dataPlaneCredentials, GrpcDataPlane } from '../../../worker/collectives/grpc-transport.js';
import { checkTlsArgs, securityFromArgs, withTlsOptions } from '../tls-args.js';
import { RingCollective } from '../../../worker/collectives/ring-collective.js';
import { StarCollective } from '../../../worker/collectives/star-collective.js';
import { runWorker } from '../../../worker/worker-main.js';

// `kp-coord worker`: one worker process (a cluster pod, or a child of `kp-coord start`).
export function registerWorker(cli: Argv): Argv {
  return cli.command(
    'worker',
    'Run one worker: register with the coordinator, train its share, exit when the run ends (token in KPCOORD_TOKEN or KPCOORD_TOKEN_FILE)',
    (y) =>
      withTlsOptions(y)
        .option('coordinator', { type: 'string', demandOption: true, describe: 'host:port of the coordinator' })
        .option('threads', { type: 'number', default: availableParallelism(), describe: 'onnxruntime intra-op threads' })
        .option('data-listen', { type: 'string', default: '127.0.0.1', describe: 'Interface of this worker\'s data-plane server (0.0.0.0 in a cluster)' })
        .option('data-port', { type: 'number', default: 0, describe: 'Data-plane port (0 picks a free one)' })
        .option('collective', { choices: ['ring', 'star'] as const, default: 'ring' as const, describe: 'ring (default); star only as bench/zero\'s baseline, ZeRO stage 0' })
        .option('advertise-host', { type: 'string', describe: 'Address peers use to reach this worker (default: 127.0.0.1 when listening on loopback, else the hostname)' })
        .option('execution-provider', { choices: ['cpu', 'cuda'] as const, default: 'cpu' as const, describe: 'onnxruntime execution provider (cuda needs the CUDA image, deploy/Dockerfile.cuda)' })
        .option('health-port', { type: 'number', describe: 'Serve grpc.health.v1 on this port (on the --data-listen interface), for probes and `kp-coord health`' })
        .check((a) => checkTlsArgs(a, workerAddresses(a)))
        .example('KPCOORD_TOKEN_FILE=/secrets/token $0 worker --coordinator kp-coord:50051 --data-listen 0.0.0.0 --data-port 50052 --tls-dir /var/run/secrets/kp-coord-tls', ''),
    async (a) => {
      const token = tokenFromEnv();
      const security = securityFromArgs(a, workerAddresses(a));
      rootLogger.info(security.kind === 'mtls' ? { security: 'mtls', ca: security.files.ca, cert: security.files.cert, serverName: security.serverName } : { security: 'plaintext' }, 'transport security');
      // A child of `kp-coord start` (an IPC channel to it) ends with its parent, even one killed
      // with SIGKILL, instead of waiting for a coordinator that will not come back.
      if (process.send) {
        process.on('disconnect', () => {
          rootLogger.warn('the local coordinator process is gone; exiting');
          // Not process.exit: once it was seen to hang in native teardown (main thread in a futex
          // wait, an orphan left behind). The parent is gone, so nothing is lost by dying at once.
          process.kill(process.pid, 'SIGKILL');
        });
      }
      const loopback = a['data-listen'] === '127.0.0.1' || a['data-listen'] === 'localhost';
      const health = a['health-port'] === undefined ? null : await HealthServer.listen(a['data-listen'], a['health-port'], security);
      try {
        await runWorker({
          coordinator: a.coordinator,
          token,
          security,
          advertiseHost: a['advertise-host'] ?? (loopback ? '127.0.0.1' : hostname()),
          intraOpThreads: a.threads,
          executionProvider: a['execution-provider'],
          log: rootLogger.child({ role: 'worker' }),
          ...(health ? { health: health.status } : {}),
          startDataPlane: async () => {
            const plane = await GrpcDataPlane.listen(token, { host: a['data-listen'], port: a['data-port'] }, dataPlaneCredentials(security));
            return {
              port: plane.port,
              connect: async (peers, rank) => {
                const transport = plane.connect(rank, peers.map((p) => ({ rank: p.rank, host: p.host, port: p.dataPort })));
                return a.collective === 'star' ? new StarCollective(transport) : new RingCollective(transport);
              },
              close: () => plane.close(),
            };
          },
        });
      } finally {
        await health?.close();
      }
    },
  );
}

/** Every address a worker listens on or dials: the coordinator, and its data/health interface. */
function workerAddresses(a: { coordinator: string; 'data-listen': string }): string[] {
  return [a.coordinator, `${a['data-listen']}:0`];
}
