import type { Seq2SeqBatch } from '../../../shared/models/batch.js';
import { parseT5Config, type T5Config } from '../../../shared/models/t5-config.js';
import { T5_PRESETS } from '../../../shared/models/presets.js';
import { rngStream } from '../../../shared/random.js';

/** A tiny T5 v1.1 (gated-gelu, untied head) small enough for float64 finite differences. */
export function tinyConfig(overrides: Record<string, unknown> = {}): T5Config {
  return parseT5Config({ ...T5_PRESETS['t5-tiny'], vocab_size: 40, ...overrides });
}

export function randomParams<T extends Float32Array | Float64Array>(out: T, seed: number, std = 0.3): T {
  const r = rngStream(seed, 99);
  for (let i = 0; i < out.length; i++) out[i] = r.normal() * std;
  return out;
}

/** Two rows of different lengths: padding in both the encoder and the labels. */
export function paddedBatch(): Seq2SeqBatch {
  return {
    batchSize: 2,
    srcLen: 5,
    tgtLen: 4,
    inputIds: Int32Array.from([5, 6, 7, 8, 1, 9, 10, 1, 0, 0]),
    attentionMask: Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]),
    labels: Int32Array.from([11, 12, 13, 1, 14, 1, -100, -100]),
  };
}

/** Row `r` of a batch alone, trimmed to its own lengths. */
export function rowAlone(batch: Seq2SeqBatch, r: number): Seq2SeqBatch {
  const s = batch.attentionMask.subarray(r * batch.srcLen, (r + 1) * batch.srcLen).reduce((a, b) => a + b, 0);
  const labels = batch.labels.subarray(r * batch.tgtLen, (r + 1) * batch.tgtLen);
  const t = labels.findIndex((x) => x === -100);
  const tgtLen = t < 0 ? batch.tgtLen : t;
  return {
    batchSize: 1,
    srcLen: s,
    tgtLen,
    inputIds: batch.inputIds.slice(r * batch.srcLen, r * batch.srcLen + s),
    attentionMask: new Int32Array(s).fill(1),
    labels: labels.slice(0, tgtLen),
  };
}
