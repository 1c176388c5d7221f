import { parentPort, workerData } from 'node:worker_threads';
import { withAddedTokens } from '../tokenizer/added-tokens.js';
import { loadTokenizer } from '../tokenizer/load-tokenizer.js';
import { encodeBatch, type EncodeReply, type EncodeRequest, type EncodeWorkerData } from './batch-encoder.js';

// One thread of WorkerPoolEncoder: loads the tokenizer once, then encodes batches on request.
const port = parentPort;
if (port === null) throw new Error('encode-worker.js runs only as a worker thread');
const data = workerData as EncodeWorkerData;
const tokenizer = withAddedTokens(loadTokenizer(data.spec), data.addedTokens ?? []);
port.postMessage({ kind: 'ready', fingerprint: tokenizer.fingerprint } satisfies EncodeReply);
port.on('message', (req: EncodeRequest) => {
  try {
    const { ids, offsets } = encodeBatch(tokenizer, req.texts);
    port.postMessage({ kind: 'done', id: req.id, ids, offsets } satisfies EncodeReply, [ids.buffer as ArrayBuffer, offsets.buffer as ArrayBuffer]);
  } catch (err) {
    port.postMessage({ kind: 'error', id: req.id, message: err instanceof Error ? err.message : String(err) } satisfies EncodeReply);
  }
});
