import type { Argv } from 'yargs';
import { tokenFromEnv } from '../../../shared/auth.js';
import { rootLogger } from '../../../shared/log.js';
import { ProgressBar } from '../../progress-bar.js';
import { runCoordinator } from '../../run-coordinator.js';
import { resolveRunConfigArgs, withRunConfigOptions } from '../run-config-args.js';

// `kp-coord coordinator`: the coordinator alone (a cluster's Deployment); workers join over gRPC.
export function registerCoordinator(cli: Argv): Argv {
  return cli.command(
    'coordinator',
    'Run the coordinator of a distributed run; workers join with `kp-coord worker` (token in KPCOORD_TOKEN or KPCOORD_TOKEN_FILE)',
    (y) =>
      withRunConfigOptions(y)
        .option('listen', { type: 'string', default: '0.0.0.0:50051', describe: 'host:port of the control plane' })
        .example('KPCOORD_TOKEN_FILE=/secrets/token $0 coordinator --config run.yaml --listen 0.0.0.0:50051', ''),
    async (a) => {
      const token = tokenFromEnv();
      const rc = resolveRunConfigArgs(a.config, a.set);
      const log = rootLogger.child({ role: 'coordinator' });
      const bar = new ProgressBar(process.stderr, rc.config.logging_steps);
      const summary = await runCoordinator(rc, { listen: a.listen, token, log, onEvent: bar.onEvent });
      process.stdout.write(`${JSON.stringify({ final_model: summary.final_model, steps: summary.steps, wall_seconds: summary.wall_seconds })}\n`);
    },
  );
}
