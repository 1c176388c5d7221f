import type { Argv } from 'yargs';
import { tokenFromEnv } from '../../../shared/auth.js';
import { rootLogger } from '../../../shared/log.js';
import { createRunPublisher, natsUrlOverrides, runNameOverrides, withNatsOption } from '../../nats/run-publisher.js';
import { ProgressBar } from '../../progress-bar.js';
import { openRunEventLog, writeReportAtEnd } from '../../report/run-files.js';
import { runCoordinator } from '../../run-coordinator.js';
import { resolveRunConfigArgs, resumeOverrides, withRunConfigOptions } from '../run-config-args.js';
import { checkTlsArgs, securityFromArgs, withTlsOptions } from '../tls-args.js';

// `kp-coord coordinator`: the coordinator alone (a cluster Job); workers join over gRPC. A restart
// after a crash continues the run (run.json); a restart after a failed run refuses to start over.
export function registerCoordinator(cli: Argv): Argv {
  return cli.command(
    'coordinator',
    'Run the coordinator of a distributed run; workers join with `kp-coord worker` (token in KPCOORD_TOKEN or KPCOORD_TOKEN_FILE)',
    (y) =>
      withTlsOptions(withNatsOption(withRunConfigOptions(y)))
        .option('listen', { type: 'string', default: '127.0.0.1:50051', describe: 'host:port of the control plane (0.0.0.0:50051 to serve other hosts, with TLS)' })
        .check((a) => checkTlsArgs(a, [a.listen]))
        .example('KPCOORD_TOKEN_FILE=/secrets/token $0 coordinator --config run.yaml --listen 0.0.0.0:50051 --tls-dir /var/run/secrets/kp-coord-tls', '')
        .example('$0 coordinator --config run.yaml --insecure-plaintext', 'plaintext, on 127.0.0.1 only'),
    async (a) => {
      const token = tokenFromEnv();
      const security = securityFromArgs(a, [a.listen]);
      const overrides = [...a.set, ...resumeOverrides(a.resume), ...natsUrlOverrides(a.nats)];
      let rc = resolveRunConfigArgs(a.config, overrides);
      const runName = runNameOverrides(rc);
      if (runName.length > 0) rc = resolveRunConfigArgs(a.config, [...overrides, ...runName]);
      const log = rootLogger.child({ role: 'coordinator' });
      const bar = new ProgressBar(process.stderr, rc.config.logging_steps);
      const nats = createRunPublisher(rc, log);
      const eventLog = openRunEventLog(rc);
      const summary = await runCoordinator(rc, {
        listen: a.listen,
        token,
        security,
        log,
        refuseAfterFailedRun: true,
        onEvent: (e) => {
          bar.onEvent(e);
          nats?.onEvent(e);
          eventLog.onEvent(e);
        },
      }).finally(async () => {
        await nats?.close();
        await writeReportAtEnd(rc, log);
      });
      process.stdout.write(`${JSON.stringify({ final_model: summary.final_model, steps: summary.steps, wall_seconds: summary.wall_seconds })}\n`);
    },
  );
}
