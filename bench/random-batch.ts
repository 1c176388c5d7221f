import type { Seq2SeqBatch } from '../shared/models/batch.js';
import type { T5Config } from '../shared/models/t5-config.js';
import { rngStream } from '../shared/random.js';

const SEED = 20261128;
/** Key of the stream the random batches draw from (any tuple distinct from init and dropout). */
const BATCH_STREAM_KEY = 0xbe7c;

/** Rows of random in-vocabulary ids (above pad 0, eos 1, unk 2), each ending in eos; no padding. */
export function randomBatch(c: T5Config, batchSize: number, srcLen: number, tgtLen: number): Seq2SeqBatch {
  const stream = rngStream(SEED, BATCH_STREAM_KEY, 0);
  const ids = (len: number) => {
    const out = new Int32Array(batchSize * len);
    for (let r = 0; r < batchSize; r++) {
      for (let i = 0; i < len - 1; i++) out[r * len + i] = 3 + Math.floor(stream.uniform() * (c.vocabSize - 3));
      out[r * len + len - 1] = c.eosTokenId;
    }
    return out;
  };
  return { batchSize, srcLen, tgtLen, inputIds: ids(srcLen), attentionMask: new Int32Array(batchSize * srcLen).fill(1), labels: ids(tgtLen) };
}
