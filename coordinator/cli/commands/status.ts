import type { Argv } from 'yargs';
import { applyEvent, emptyRunState, isEnded, type RunState } from '../../nats/run-state.js';
import { EventReader } from '../../nats/event-reader.js';
import { formatLossChart, LossSeries } from '../../nats/loss-chart.js';
import { DEFAULT_NATS_URL, NATS_URL_ENV } from '../../nats/nats-connection.js';
import { formatEventLine, formatProgress, formatRunState, formatRunTable } from '../../nats/status-format.js';

// `kp-coord status`: a run's state (or every run's) from the NATS stream's history, or its live view
// with --follow until it ends (exit 0 when it finished, 1 when it failed). On a terminal a run's view
// ends with its loss curve as a small chart; piped, the output stays plain text lines.

export function registerStatus(cli: Argv): Argv {
  return cli.command(
    'status',
    'Show runs published on NATS: the list, one run\'s state (--run), or its live progress (--follow)',
    (y) =>
      y
        .option('run', { type: 'string', describe: 'Run name (run_name); without it, the list of runs' })
        .option('follow', { type: 'boolean', default: false, describe: 'Live view until the run ends; exit 0 if it finished, 1 if it failed' })
        .option('json', { type: 'boolean', default: false, describe: 'Machine-readable output (with --follow: one JSON event per line)' })
        .option('nats', { type: 'string', describe: `NATS URL (default: $${NATS_URL_ENV} or ${DEFAULT_NATS_URL}); credentials from KPCOORD_NATS_* variables` })
        .option('prefix', { type: 'string', default: 'kpcoord', describe: 'Subject prefix (the run config\'s nats.subject_prefix)' })
        .check((a) => (a.follow && a.run === undefined ? '--follow needs --run' : true))
        .example('$0 status', 'every run on the default NATS server')
        .example('$0 status --run demo --follow --nats nats://nats:4222', ''),
    async (a) => {
      const url = a.nats ?? process.env[NATS_URL_ENV] ?? DEFAULT_NATS_URL;
      const reader = await EventReader.open({ url }, a.prefix);
      try {
        if (a.run === undefined) {
          const states: RunState[] = [];
          for (const run of await reader.listRuns()) states.push(await snapshot(reader, run));
          process.stdout.write(a.json ? `${JSON.stringify(states)}\n` : states.length > 0 ? `${formatRunTable(states)}\n` : 'no runs\n');
        } else if (!a.follow) {
          const losses = new LossSeries();
          const s = await snapshot(reader, a.run, losses);
          process.stdout.write(a.json ? `${JSON.stringify(s)}\n` : `${formatRunState(s)}\n${terminalChart(losses)}`);
        } else {
          const s = await follow(reader, a.run, a.json);
          if (s.phase !== 'finished') process.exitCode = 1;
        }
      } finally {
        await reader.close();
      }
    },
  );
}

async function snapshot(reader: EventReader, run: string, losses?: LossSeries): Promise<RunState> {
  const s = emptyRunState(run);
  await reader.read(run, {
    follow: false,
    onEvent: (e) => {
      applyEvent(s, e);
      losses?.add(e);
    },
  });
  return s;
}

/** The loss chart and a newline on a TTY; nothing when piped or with fewer than two steps. */
function terminalChart(losses: LossSeries): string {
  if (!process.stdout.isTTY) return '';
  const chart = formatLossChart(losses.points(), { width: Math.min(process.stdout.columns || 80, 100) });
  return chart === null ? '' : `${chart}\n`;
}

/** History folded silently into a snapshot, then each live event shown, until the run ends. */
async function follow(reader: EventReader, run: string, json: boolean): Promise<RunState> {
  const s = emptyRunState(run);
  const losses = new LossSeries();
  const out = process.stdout;
  let barShown = false;
  const line = (text: string) => {
    if (barShown && out.isTTY) out.write('\n');
    barShown = false;
    out.write(`${text}\n`);
  };
  let live = false;
  let endedInHistory = false;
  await reader.read(run, {
    follow: true,
    onEvent: (e) => {
      applyEvent(s, e);
      losses.add(e);
      if (json) out.write(`${JSON.stringify({ kind: e.kind, ...e.event })}\n`);
      else if (live) {
        const text = formatEventLine(e);
        if (text !== null) line(text);
        else if (out.isTTY) {
          out.write(`\r${formatProgress(s)}`);
          barShown = true;
        } else line(formatProgress(s));
      }
      // Until caught up, the history's end decides (caughtUp); a live terminal event ends the view.
      return live && isEnded(s);
    },
    caughtUp: () => {
      live = true;
      endedInHistory = isEnded(s);
      if (!json) line(`${formatRunState(s)}\n${terminalChart(losses)}`.trimEnd());
      return endedInHistory;
    },
  });
  if (barShown && out.isTTY) out.write('\n');
  // The whole curve once more when the run ended while being watched.
  if (!json && !endedInHistory) out.write(terminalChart(losses));
  return s;
}
