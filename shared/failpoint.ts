import { existsSync, readFileSync, unlinkSync } from 'node:fs';

// Failpoints, as etcd's gofail and TiKV's fail-rs have them: named points in the code where a test
// can make a process die, so a fault lands exactly where the test means (e.g. "while rank 1
// gathers this unit") instead of wherever a timed kill happens to fall. Off unless the environment
// names a file (KPCOORD_FAILPOINT_FILE) holding a point's name, or the start of one (the first
// point whose name starts with it fires). The first process to reach
// that point deletes the file and kills itself with SIGKILL, so a replacement process (which
// inherits the environment) runs on: one fault per file.

let armed: string | null | undefined;

export function failpoint(name: string): void {
  const file = process.env.KPCOORD_FAILPOINT_FILE;
  if (!file) return;
  armed ??= existsSync(file) ? readFileSync(file, 'utf8').trim() : null;
  if (!armed || !name.startsWith(armed)) return;
  try {
    unlinkSync(file);
  } catch {
    return; // another process got there first
  }
  process.kill(process.pid, 'SIGKILL');
}
