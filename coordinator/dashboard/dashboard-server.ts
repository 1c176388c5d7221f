import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TERMINAL_EVENTS, type KpcoordEvent } from '../../shared/events/events-v1.js';
import type { Logger } from '../../shared/log.js';
import { renderRunPage } from '../report/page-html.js';
import { readPredictions, readSummary, PREDICTION_ROWS, type PredictionRow, type ReportSummary, type RunStatus } from '../report/run-report-data.js';
import { readRunRecord } from '../run-record.js';
import type { FollowerState } from './stream-follower.js';

// `kp-coord dashboard`'s web server: one page (the run page of report.html, in live mode) and one
// server-sent-event stream, /events, that gives a new page every run's history and then each event
// as it arrives. EventSource reconnects by itself; each (re)connection starts with `reset` and the
// whole history, so a page never has to know what it missed.

/** What the run's output directory adds, when this host can read it (a local run; a shared volume). */
interface RunFiles {
  readonly run: string;
  readonly status: RunStatus | null;
  readonly summary: ReportSummary | null;
  readonly predictions: readonly PredictionRow[];
}

const KEEPALIVE_MS = 15_000;

export class DashboardServer {
  private readonly history = new Map<string, KpcoordEvent[]>();
  private readonly files = new Map<string, RunFiles>();
  private readonly clients = new Set<ServerResponse>();
  private natsState: FollowerState = { state: 'connecting' };
  private readonly server: Server;
  private readonly page: string;
  private keepalive: NodeJS.Timeout | null = null;

  constructor(
    private readonly natsUrl: string,
    private readonly log: Logger,
  ) {
    this.page = renderRunPage({ mode: 'live', eventsUrl: '/events' }, 'kp-coord dashboard');
    this.server = createServer((req, res) => this.handle(req, res));
  }

  /** Listens on host:port (port 0 picks one); returns the page's URL. */
  async listen(host: string, port: number): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    this.keepalive = setInterval(() => this.broadcast(': keepalive\n\n'), KEEPALIVE_MS);
    const a = this.server.address() as AddressInfo;
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/`;
  }

  async close(): Promise<void> {
    if (this.keepalive) clearInterval(this.keepalive);
    for (const c of this.clients) c.end();
    this.clients.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** A StreamFollower's onEvent. */
  readonly onEvent = (e: KpcoordEvent): void => {
    const run = e.event.run;
    let events = this.history.get(run);
    if (!events) this.history.set(run, (events = []));
    events.push(e);
    this.broadcast(sse('kp', { run, kind: e.kind, event: e.event }));
    // The run's files are complete once it has ended (summary.json is written before `finished`).
    const ended = e.kind === 'lifecycle' && (TERMINAL_EVENTS as readonly string[]).includes(e.event.event);
    if (ended || (e.kind === 'eval' && !('eval_loss' in e.event))) this.refreshFiles(run);
  };

  /** A StreamFollower's onState. */
  readonly onState = (s: FollowerState): void => {
    this.natsState = s;
    this.broadcast(sse('nats', this.natsMessage()));
  };

  private natsMessage() {
    return { url: this.natsUrl, connected: this.natsState.state === 'live' || this.natsState.state === 'no-stream', state: this.natsState.state };
  }

  private refreshFiles(run: string): void {
    const started = this.history.get(run)?.find((e) => e.kind === 'lifecycle' && e.event.event === 'run_started');
    if (!started || started.kind !== 'lifecycle' || started.event.event !== 'run_started') return;
    const dir = started.event.config.output_dir;
    try {
      const record = readRunRecord(dir, null);
      const f: RunFiles = { run, status: record && record.run_id === run ? record.status : null, summary: readSummary(dir), predictions: readPredictions(dir, PREDICTION_ROWS) };
      this.files.set(run, f);
      this.broadcast(sse('files', f));
    } catch (err) {
      // Another host's run, or files being rewritten: the page shows what the events say.
      this.log.debug({ run, dir, err: (err as Error).message }, 'run files not readable here');
    }
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    if (req.method !== 'GET') return void res.writeHead(405, { allow: 'GET' }).end();
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'" });
      return void res.end(this.page);
    }
    if (url.pathname === '/events') return this.subscribe(req, res);
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }

  private subscribe(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    let text = `retry: 1000\n\n${sse('reset', {})}${sse('nats', this.natsMessage())}`;
    for (const [run, events] of this.history) for (const e of events) text += sse('kp', { run, kind: e.kind, event: e.event });
    for (const f of this.files.values()) text += sse('files', f);
    res.write(text);
    this.clients.add(res);
    req.on('close', () => this.clients.delete(res));
  }

  private broadcast(text: string): void {
    for (const c of this.clients) c.write(text);
  }
}

function sse(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
