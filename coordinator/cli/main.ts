#!/usr/bin/env node
// kp-coord command line. Each command lives in its own file under ./commands and is listed here.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { KpCoordError } from '../../shared/errors.js';
import { commands } from './commands/index.js';

async function main(argv: string[]): Promise<number> {
  let cli = yargs(argv)
    .scriptName('kp-coord')
    .usage('$0 <command> [options]\n\nDistributed T5 keyphrase training on onnxruntime-node (ZeRO over gRPC).')
    .strict()
    .demandCommand(1, 'Name a command; see --help.')
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((msg, err, y) => {
      // Usage mistakes (yargs' own YError, or a .check() message, which yargs passes as a string):
      // show help and exit 2.
      // Failures of a command's handler are rethrown to the handler below.
      if ((err as unknown) instanceof Error && err.name !== 'YError') throw err;
      process.stderr.write(`${y.help()}\n\n${msg}\n`);
      process.exit(2);
    });
  for (const register of commands) cli = register(cli);
  await cli.parseAsync();
  return process.exitCode === undefined ? 0 : Number(process.exitCode);
}

main(hideBin(process.argv))
  .then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      // Known errors print their message alone; anything else is a bug and prints its stack.
      if (err instanceof KpCoordError) process.stderr.write(`kp-coord: ${err.message}\n`);
      else process.stderr.write(`kp-coord: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  )
  .finally(() => {
    // A child of `kp-coord start` has an IPC channel to its parent, which alone keeps the event
    // loop alive: without this, a worker that failed before registering never exited and its
    // coordinator waited for it for ever.
    process.channel?.unref();
  });
