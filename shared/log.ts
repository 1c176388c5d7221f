import { pino, type Logger } from 'pino';

// One pino root logger; components take children with their own bindings (run, rank, step).
// Logs go to stderr so stdout stays free for command output (JSON, tables).
export const rootLogger: Logger = pino(
  { level: process.env.KPCOORD_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
  pino.destination(2),
);

export type { Logger };
