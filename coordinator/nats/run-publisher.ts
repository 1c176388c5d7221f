import { resolve } from 'node:path';
import type { Argv } from 'yargs';
import type { ResolvedRunConfig } from '../../shared/config/resolve-run-config.js';
import type { Logger } from '../../shared/log.js';
import { NATS_URL_ENV, natsConnectionOptions } from './nats-connection.js';
import { NatsPublisher } from './nats-publisher.js';

// What `start` and `coordinator` share to publish a run on NATS: the --nats option, the config
// overrides it implies, and the publisher built from the resolved config.

export function withNatsOption<T>(y: Argv<T>) {
  return y.option('nats', { type: 'string', describe: `Publish progress to this NATS server (sets nats.url; also $${NATS_URL_ENV}); credentials from KPCOORD_NATS_* variables` });
}

/** `nats.url=...` when a URL comes from --nats or the environment (either turns publishing on). */
export function natsUrlOverrides(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  const url = flag ?? env[NATS_URL_ENV];
  return url ? [`nats.url=${url}`] : [];
}

/**
 * The subjects name the run, and a watcher must be able to find it from the first event, so a run
 * published on NATS gets its name now (runCoordinator would otherwise derive the same form later).
 */
export function runNameOverrides(rc: ResolvedRunConfig, now = new Date()): string[] {
  if (!rc.config.nats || rc.config.run_name) return [];
  return [`run_name=run-${now.toISOString().replace(/[-:T]/gu, '').slice(0, 14)}`];
}

/** A publisher when the config has a nats section, else null (the terminal is then the only watcher). */
export function createRunPublisher(rc: ResolvedRunConfig, log: Logger): NatsPublisher | null {
  const n = rc.config.nats;
  const run = rc.config.run_name;
  if (!n || !run) return null;
  const c = rc.config;
  return new NatsPublisher({
    connection: natsConnectionOptions({ url: n.url, credentialsFile: n.credentials_file }),
    prefix: n.subject_prefix,
    run,
    progressIntervalMs: n.progress_interval_ms,
    config: { model: c.model, global_batch_size: rc.globalBatchSize, learning_rate: c.learning_rate, lr_scheduler_type: c.lr_scheduler_type, seed: c.seed, output_dir: resolve(c.output_dir) },
    log: log.child({ run }),
  });
}
