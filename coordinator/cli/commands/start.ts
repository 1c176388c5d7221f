import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Argv } from 'yargs';
import { tokenFromEnv, tokenInEnv } from '../../../shared/auth.js';
import { KpCoordError } from '../../../shared/errors.js';
import { rootLogger } from '../../../shared/log.js';
import { LocalWorkers } from '../../local-workers.js';
import { createRunPublisher, natsUrlOverrides, runNameOverrides, withNatsOption } from '../../nats/run-publisher.js';
import { ProgressBar } from '../../progress-bar.js';
import { openRunEventLog, writeReportAtEnd } from '../../report/run-files.js';
import { runCoordinator } from '../../run-coordinator.js';
import { markRunInterrupted } from '../../run-record.js';
import { resolveRunConfigArgs, resumeOverrides, withRunConfigOptions } from '../run-config-args.js';
import { checkTlsArgs, noTlsFiles, securityFromArgs, tlsArgsForChild, withTlsOptions } from '../tls-args.js';

// `kp-coord start --workers N`: a whole run on this machine — the coordinator in this process,
// N worker processes, a progress bar; Ctrl-C stops everything.

const CLI_PATH = resolve(fileURLToPath(import.meta.url), '..', '..', 'main.js');

export function registerStart(cli: Argv): Argv {
  return cli.command(
    'start',
    'Train on this machine: coordinator here, N worker processes (embedded default run without --config)',
    (y) =>
      withTlsOptions(withNatsOption(withRunConfigOptions(y)))
        .option('workers', { type: 'number', describe: 'Number of worker processes (overrides the config\'s `workers`)' })
        .option('collective', { choices: ['ring', 'star'] as const, default: 'ring' as const, describe: 'Gradient aggregation: ring (worker to worker); star only as the benchmark baseline (stage 0)' })
        .option('threads-per-worker', { type: 'number', describe: 'onnxruntime intra-op threads per worker (default: cores / workers)' })
        // Everything binds to 127.0.0.1, so plaintext is the loopback kind the flag allows; TLS files
        // (--tls-dir) turn mTLS on for the coordinator and every worker.
        .check((a) => checkTlsArgs({ ...a, 'insecure-plaintext': noTlsFiles(a) }, ['127.0.0.1:0']))
        .check((a) => (a.workers === undefined || (Number.isSafeInteger(a.workers) && a.workers >= 1) ? true : `--workers must be a positive integer, got ${a.workers}`))
        .example('$0 start --workers 2', 'the embedded default: a small byte-level T5 on the shipped Korean sample set')
        .example('$0 start --workers 4 --config run.yaml --set zero_optimization.stage=1', '')
        .example('$0 start --workers 8 --set model=preset:pko-t5-base --set zero_optimization.stage=3 --set zero_optimization.stage3_max_reuse_distance=0', 'ZeRO-3: each worker keeps 1/8 of parameters, gradients and moments and gathers a block at a time'),
    async (a) => {
      const overrides = [...a.set, ...resumeOverrides(a.resume), ...(a.workers !== undefined ? [`workers=${a.workers}`] : []), ...natsUrlOverrides(a.nats)];
      let rc = resolveRunConfigArgs(a.config, overrides);
      const runName = runNameOverrides(rc);
      if (runName.length > 0) rc = resolveRunConfigArgs(a.config, [...overrides, ...runName]);
      if (a.collective === 'star' && rc.config.zero_optimization.stage !== 0) {
        throw new KpCoordError(`--collective star is the stage-0 baseline only; this run uses ZeRO stage ${rc.config.zero_optimization.stage} (add --set zero_optimization.stage=0)`);
      }
      // Local mode keeps the terminal for the progress bar; logs go to files unless asked for.
      const log = rootLogger.child({ role: 'coordinator' }, { level: process.env.KPCOORD_LOG_LEVEL ?? 'warn' });
      // The token the workers get is the one this process checks: from KPCOORD_TOKEN_FILE or
      // KPCOORD_TOKEN when set (validated here, not first in a worker's log), else a fresh one.
      const token = tokenInEnv() ? tokenFromEnv() : randomBytes(24).toString('hex');
      const security = securityFromArgs({ ...a, 'insecure-plaintext': noTlsFiles(a) }, ['127.0.0.1:0']);
      const bar = new ProgressBar(process.stderr, rc.config.logging_steps);
      const nats = createRunPublisher(rc, log);
      const eventLog = openRunEventLog(rc);
      let workers: LocalWorkers | null = null;
      let failWorkers: (e: Error) => void = () => undefined;
      const workerFailure = new Promise<never>((_, reject) => (failWorkers = reject));
      workerFailure.catch(() => undefined);
      const interrupted = () => {
        process.stderr.write('\ninterrupted: stopping workers\n');
        workers?.kill('SIGTERM');
        markRunInterrupted(resolve(rc.config.output_dir));
        // Watchers on NATS learn why the run ended (given at most 2 s to publish it).
        const why = 'stopped with Ctrl-C (SIGINT/SIGTERM)';
        nats?.interrupt(why);
        eventLog.onEvent({ type: 'interrupted', reason: why });
        void (nats?.close(2000) ?? Promise.resolve()).finally(() => writeReportAtEnd(rc, log)).finally(() => process.exit(130));
      };
      process.once('SIGINT', interrupted);
      process.once('SIGTERM', interrupted);
      const stopRun = new AbortController();
      let run: Promise<unknown> = Promise.resolve();
      try {
        run = runCoordinator(rc, {
          listen: '127.0.0.1:0',
          token,
          security,
          log,
          signal: stopRun.signal,
          onWorkerLost: (member) => (workers as LocalWorkers | null)?.killLost(member.pid),
          onEvent: (e) => {
            bar.onEvent(e);
            nats?.onEvent(e);
            eventLog.onEvent(e);
            if (e.type === 'listening') {
              workers = new LocalWorkers({
                count: rc.worldSize,
                coordinator: `127.0.0.1:${e.port}`,
                token,
                cliPath: CLI_PATH,
                logDir: join(resolve(rc.config.output_dir), 'logs'),
                extraArgs: ['--collective', a.collective, ...tlsArgsForChild(a)],
                maxRestarts: rc.config.max_restarts,
                ...(a['threads-per-worker'] !== undefined ? { threadsPerWorker: a['threads-per-worker'] } : {}),
                log,
              });
              workers.start(failWorkers);
            }
          },
        });
        const summary = (await Promise.race([run, workerFailure])) as Awaited<ReturnType<typeof runCoordinator>>;
        await (workers as LocalWorkers | null)?.stop();
        process.stdout.write(`${JSON.stringify({ summary: join(resolve(rc.config.output_dir), 'summary.json'), final_model: summary.final_model, steps: summary.steps, final_loss: summary.train_loss.at(-1)?.loss, wall_seconds: summary.wall_seconds })}\n`);
      } catch (err) {
        // Stop the coordinator too (its server would keep this process alive), then the workers:
        // SIGTERM, and SIGKILL for any that do not go (a stopped one cannot).
        stopRun.abort((err as Error).message);
        await run.catch(() => undefined);
        (workers as LocalWorkers | null)?.kill('SIGTERM');
        await (workers as LocalWorkers | null)?.stop(5000);
        nats?.fail((err as Error).message);
        eventLog.fail((err as Error).message);
        throw err;
      } finally {
        await nats?.close();
        await writeReportAtEnd(rc, log);
        process.off('SIGINT', interrupted);
        process.off('SIGTERM', interrupted);
      }
    },
  );
}
