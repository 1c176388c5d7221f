import type { Argv } from 'yargs';
import { rootLogger } from '../../../shared/log.js';
import { loadInputs, type InputFiles } from '../../../shared/metrics/eval-inputs.js';
import { evaluate } from '../../../shared/metrics/evaluation.js';
import { renderMarkdown } from '../../../shared/metrics/report.js';
import { renderSummary } from '../../../shared/metrics/summary-table.js';
import { writeReportFiles } from '../../../shared/metrics/write-report-files.js';

// `kp-coord evaluate`: score predicted keyphrases against gold ones with the team's metrics, the
// field's exact-match F1 (all / present / absent), Korean ROUGE and list statistics.

const log = rootLogger.child({ command: 'evaluate' });

interface EvaluateArgs {
  readonly pairs?: string;
  readonly gold?: string;
  readonly pred?: string;
  readonly source?: string;
  readonly k: number;
}

/** The input files the arguments name, or what is wrong with them (a usage error). */
function inputFilesOf(argv: EvaluateArgs): InputFiles | string {
  if (!Number.isInteger(argv.k) || argv.k < 1) return '--k must be a positive integer.';
  const source = argv.source !== undefined ? { source: argv.source } : {};
  if (argv.pairs !== undefined) return { kind: 'pairs', pairs: argv.pairs, ...source };
  if (argv.gold !== undefined && argv.pred !== undefined) return { kind: 'gold-prediction', gold: argv.gold, prediction: argv.pred, ...source };
  return 'give --pairs FILE, or both --gold FILE and --pred FILE.';
}

export function registerEvaluate(cli: Argv): Argv {
  return cli.command(
    'evaluate',
    'Score predicted keyphrases against gold ones (team metrics, F1@5/10/M/O, Korean ROUGE)',
    (y) =>
      y
        .option('pairs', { type: 'string', describe: 'JSONL of {"label": "a; b", "prediction": "c; d"} rows' })
        .option('gold', { type: 'string', describe: 'gold keyphrases: .jsonl (label|keyphrases) or text, one document per line' })
        .option('pred', { type: 'string', describe: 'predicted keyphrases: .jsonl (prediction|keyphrases) or text, one per line' })
        .option('source', { type: 'string', describe: 'JSONL of articles aligned with the rows (title_content | source | title+body)' })
        .option('k', { type: 'number', default: 10, describe: "cutoff for the team's F1@k and Jaccard@k (also adds F1@k)" })
        .option('json', { type: 'boolean', default: false, describe: 'print the JSON report on stdout instead of the table' })
        .option('out', { type: 'string', describe: 'also write PREFIX.json and PREFIX.md' })
        .conflicts('pairs', ['gold', 'pred'])
        .implies('gold', 'pred')
        .implies('pred', 'gold'),
    (argv) => {
      // Checked here rather than in .check(): main.ts's fail handler rethrows whatever yargs
      // passes as `err`, and for .check() that is the message itself, which would exit 1.
      const files = inputFilesOf(argv);
      if (typeof files === 'string') {
        process.stderr.write(`kp-coord evaluate: ${files}\nSee kp-coord evaluate --help.\n`);
        process.exitCode = 2;
        return;
      }
      const started = performance.now();
      const inputs = loadInputs(files);
      const report = evaluate(inputs.documents, argv.k, inputs.files, inputs.pairsSha256);
      const json = `${JSON.stringify(report, null, 2)}\n`;
      if (argv.out !== undefined) {
        const written = writeReportFiles(argv.out, json, renderMarkdown(report));
        log.info({ json: written.json, markdown: written.markdown }, 'report written');
      }
      process.stdout.write(argv.json ? json : renderSummary(report));
      log.info({ documents: report.inputs.documents, ms: Math.round(performance.now() - started) }, 'evaluated');
    },
  );
}
