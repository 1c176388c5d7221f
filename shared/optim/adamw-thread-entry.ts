import { parentPort } from 'node:worker_threads';
import { updateRanges } from './adamw.js';
import type { PieceJob, PieceReply } from './adamw-threads.js';

// A piece thread of AdamWThreads: updates its piece of the decay ranges in place (the arrays are
// SharedArrayBuffer views the main thread also holds) with the scalars the main thread derived,
// so every piece computes exactly what adamWStep would. Errors go back as a reply, not a crash, so
// the thread stays usable and the step rejects with the message.

const port = parentPort!;
port.on('message', (job: PieceJob) => {
  let reply: PieceReply;
  try {
    updateRanges(job.p, job.g, job.m, job.v, job.offset, job.ranges, job.hyper, job.scalars);
    reply = { ok: true };
  } catch (err) {
    reply = { ok: false, message: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply);
});
