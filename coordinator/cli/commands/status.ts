import type { Argv } from 'yargs';
import { applyEvent, emptyRunState, isEnded, type RunState } from '../../nats/run-state.js';
import { EventReader } from '../../nats/event-reader.js';
import { DEFAULT_NATS_URL, NATS_URL_ENV } from '../../nats/nats-connection.js';
import { formatEventLine, formatProgress, formatRunState, formatRunTable } from '../../nats/status-format.js';

// `kp-coord status`: a run's state (or every run's) from the NATS stream's history, or its live view
// with --follow until it ends (exit 0 when it finished, 1 when it failed).

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
          const s = await snapshot(reader, a.run);
          process.stdout.write(a.json ? `${JSON.stringify(s)}\n` : `${formatRunState(s)}\n`);
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

async function snapshot(reader: EventReader, run: string): Promise<RunState> {
  const s = emptyRunState(run);
  await reader.read(run, { follow: false, onEvent: (e) => void applyEvent(s, e) });
  return s;
}

/** History folded silently into a snapshot, then each live event shown, until the run ends. */
async function follow(reader: EventReader, run: string, json: boolean): Promise<RunState> {
  const s = emptyRunState(run);
  const out = process.stdout;
  let barShown = false;
  const line = (text: string) => {
    if (barShown && out.isTTY) out.write('\n');
    barShown = false;
    out.write(`${text}\n`);
  };
  let live = false;
  await reader.read(run, {
    follow: true,
    onEvent: (e) => {
      applyEvent(s, e);
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
      if (!json) line(formatRunState(s));
      return isEnded(s);
    },
  });
  if (barShown && out.isTTY) out.write('\n');
  return s;
}
