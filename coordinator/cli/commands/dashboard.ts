import type { Argv } from 'yargs';
import { rootLogger } from '../../../shared/log.js';
import { DashboardServer } from '../../dashboard/dashboard-server.js';
import { StreamFollower } from '../../dashboard/stream-follower.js';
import { DEFAULT_NATS_URL, NATS_URL_ENV } from '../../nats/nats-connection.js';

// `kp-coord dashboard`: a web page of every run on NATS (the run page of report.html, live), served
// on loopback by default; it follows the JetStream stream and survives NATS restarts.

export function registerDashboard(cli: Argv): Argv {
  return cli.command(
    'dashboard',
    'Serve a live web page of the runs on NATS: curves, eval, workers, events, keyphrases',
    (y) =>
      y
        .option('nats', { type: 'string', describe: `NATS URL (default: $${NATS_URL_ENV} or ${DEFAULT_NATS_URL}); credentials from KPCOORD_NATS_* variables` })
        .option('listen', { type: 'string', default: '127.0.0.1:8080', describe: 'host:port to serve on (loopback by default; port 0 picks one)' })
        .option('prefix', { type: 'string', default: 'kpcoord', describe: 'Subject prefix (the run config\'s nats.subject_prefix)' })
        .check((a) => (parseListen(a.listen) ? true : `--listen ${a.listen}: expected host:port, e.g. 127.0.0.1:8080`))
        .example('$0 dashboard', 'http://127.0.0.1:8080/ for the runs on nats://127.0.0.1:4222')
        .example('$0 dashboard --nats nats://nats:4222 --listen 127.0.0.1:9000', ''),
    async (a) => {
      const listen = parseListen(a.listen)!;
      const url = a.nats ?? process.env[NATS_URL_ENV] ?? DEFAULT_NATS_URL;
      const log = rootLogger.child({ role: 'dashboard' });
      const server = new DashboardServer(url, log);
      const page = await server.listen(listen.host, listen.port);
      const follower = new StreamFollower({ endpoint: { url }, prefix: a.prefix, onEvent: server.onEvent, onState: server.onState, log });
      process.stdout.write(`dashboard: ${page} (runs on ${url})\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await follower.stop();
      await server.close();
    },
  );
}

/** host:port (an IPv6 host in brackets), or null. */
function parseListen(text: string): { host: string; port: number } | null {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/u.exec(text);
  if (!m || Number(m[2]) > 65535) return null;
  return { host: m[1]!.replace(/^\[|\]$/gu, ''), port: Number(m[2]) };
}
