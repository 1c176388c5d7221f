import { join } from 'node:path';
import { writeBytesAtomically } from '../../shared/weights/atomic-file.js';
import { renderRunPage } from './page-html.js';
import { loadRunDir } from './run-report-data.js';

// OUTPUT_DIR/report.html: the run page with the run's data inline, one self-contained file.

export const REPORT_FILE = 'report.html';

/** Writes the report of the run in `runDir` (atomically) and returns its path. */
export async function writeRunReport(runDir: string, out = join(runDir, REPORT_FILE)): Promise<string> {
  const data = loadRunDir(runDir);
  const html = renderRunPage({ mode: 'report', generated: new Date().toISOString(), runs: [data] }, `kp-coord run ${data.run}`);
  await writeBytesAtomically(out, html);
  return out;
}
