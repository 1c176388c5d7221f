import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

// One pino root logger; components take children with their own bindings (run, rank, step).
// Logs go to stderr so stdout stays free for command output (JSON, tables): JSON lines, or
// pino-pretty's readable lines when stderr is a terminal (KPCOORD_LOG_FORMAT=json forces JSON).
const readable = process.stderr.isTTY === true && process.env.KPCOORD_LOG_FORMAT !== 'json';

export const rootLogger: Logger = pino(
  { level: process.env.KPCOORD_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
  readable ? pretty({ destination: 2, sync: true, colorize: true, ignore: 'hostname' }) : pino.destination(2),
);

export type { Logger };
