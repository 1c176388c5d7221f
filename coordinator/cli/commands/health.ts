import type { Argv } from 'yargs';
import { checkHealth, HealthCheckError, watchHealth } from '../../../shared/health/health-check.js';
import { checkTlsArgs, securityFromArgs, withTlsOptions } from '../tls-args.js';
import { READINESS_SERVICE, ServingStatus, statusName } from '../../../shared/health/health-status.js';

// `kp-coord health`: one grpc.health.v1 Check, for exec probes and people. Prints the status and
// exits 0 for SERVING, 1 for anything else (NOT_SERVING, unknown service, unreachable).
// `--watch` prints every status change until the target ends the stream.
export function registerHealth(cli: Argv): Argv {
  return cli.command(
    'health',
    'Ask a coordinator or worker for its gRPC health status (exit 0 if SERVING, else 1)',
    (y) =>
      withTlsOptions(y)
        .option('target', { type: 'string', demandOption: true, describe: 'host:port of a coordinator\'s control port or a worker\'s --health-port' })
        .option('service', { type: 'string', default: READINESS_SERVICE, describe: '\'\' (readiness, the default) or \'liveness\'' })
        .option('timeout', { type: 'number', default: 5, describe: 'Seconds to wait for the answer' })
        .option('watch', { type: 'boolean', default: false, describe: 'Stream status changes (grpc.health.v1 Watch) instead of one Check' })
        .check((a) => checkTlsArgs(a, [a.target]))
        .example('$0 health --target kp-coord-coordinator:50051 --tls-dir /var/run/secrets/kp-coord-tls', '')
        .example('$0 health --target 127.0.0.1:50060 --service liveness', ''),
    async (a) => {
      const security = securityFromArgs(a, [a.target]);
      try {
        if (a.watch) {
          let last: ServingStatus | undefined;
          for await (const status of watchHealth(a.target, { service: a.service, security })) {
            process.stdout.write(`${statusName(status)}\n`);
            last = status;
          }
          process.exitCode = last === ServingStatus.SERVING ? 0 : 1;
          return;
        }
        const status = await checkHealth(a.target, { service: a.service, timeoutMs: a.timeout * 1000, security });
        process.stdout.write(`${statusName(status)}\n`);
        process.exitCode = status === ServingStatus.SERVING ? 0 : 1;
      } catch (err) {
        if (!(err instanceof HealthCheckError)) throw err;
        process.stdout.write('UNREACHABLE\n');
        process.stderr.write(`kp-coord: ${err.message}\n`);
        process.exitCode = 1;
      }
    },
  );
}
