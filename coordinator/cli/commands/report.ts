import { resolve } from 'node:path';
import type { Argv } from 'yargs';
import { writeRunReport } from '../../report/write-report.js';

// `kp-coord report --run-dir DIR`: (re)writes DIR/report.html from the run's files (summary.json,
// events.jsonl, eval_predictions.jsonl, run.json) — the same page every run writes when it ends.

export function registerReport(cli: Argv): Argv {
  return cli.command(
    'report',
    'Write a run\'s self-contained report.html (charts, workers, events, keyphrases) from its output directory',
    (y) =>
      y
        .option('run-dir', { type: 'string', demandOption: true, describe: 'The run\'s output_dir (holds summary.json and events.jsonl)' })
        .option('out', { type: 'string', describe: 'Where to write the page (default: RUN_DIR/report.html)' })
        .example('$0 report --run-dir runs/kp-coord', 'writes runs/kp-coord/report.html'),
    async (a) => {
      const path = await writeRunReport(resolve(a['run-dir']), a.out === undefined ? undefined : resolve(a.out));
      process.stdout.write(`${path}\n`);
    },
  );
}
