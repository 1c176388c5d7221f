import type { Argv } from 'yargs';

// Every top-level command, in the order --help lists them. Each command file exports one function
// that registers itself on the parser, which keeps each command's argument types its own.
export type RegisterCommand = (cli: Argv) => Argv;

export const commands: RegisterCommand[] = [];
