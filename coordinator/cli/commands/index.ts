import type { Argv } from 'yargs';
import { registerCoordinator } from './coordinator.js';
import { registerDashboard } from './dashboard.js';
import { registerData } from './data.js';
import { registerDev } from './dev.js';
import { registerEvaluate } from './evaluate.js';
import { registerExport } from './export.js';
import { registerGenerate } from './generate.js';
import { registerHealth } from './health.js';
import { registerReport } from './report.js';
import { registerStart } from './start.js';
import { registerStatus } from './status.js';
import { registerWorker } from './worker.js';

// Every top-level command, in the order --help lists them. Each command file exports one function
// that registers itself on the parser, which keeps each command's argument types its own.
export type RegisterCommand = (cli: Argv) => Argv;

export const commands: RegisterCommand[] = [registerStart, registerCoordinator, registerWorker, registerData, registerGenerate, registerEvaluate, registerExport, registerHealth, registerStatus, registerDashboard, registerReport, registerDev];
