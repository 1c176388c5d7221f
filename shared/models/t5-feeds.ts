import * as ort from 'onnxruntime-node';
import { EngineError } from '../../shared/errors.js';
import type { FloatDType } from '../../shared/onnx/dtype.js';
import type { Seq2SeqBatch } from '../../shared/models/batch.js';
import type { T5Config } from '../../shared/models/t5-config.js';
import { T5_DATA_INPUTS } from '../../shared/models/t5-graph.js';
import { finfoMin } from '../../shared/models/t5-layers.js';
import { positionBucketTable, shiftRight } from '../../shared/models/t5-position-buckets.js';

// The data inputs of the T5 graph for one micro-batch. Position-bucket tables and the causal
// mask depend only on lengths, so they are made once per length and reused.

export class T5Feeds {
  private readonly buckets = new Map<string, ort.Tensor>();
  private readonly causal = new Map<number, ort.Tensor>();

  constructor(
    private readonly config: T5Config,
    private readonly dtype: FloatDType,
  ) {}

  feeds(batch: Seq2SeqBatch): Record<string, ort.Tensor> {
    this.validate(batch);
    const { batchSize: b, srcLen: s, tgtLen: t } = batch;
    const c = this.config;
    const I = T5_DATA_INPUTS;
    return {
      [I.inputIds]: new ort.Tensor('int32', batch.inputIds, [b, s]),
      [I.attentionMask]: new ort.Tensor('int32', batch.attentionMask, [b, s]),
      [I.decoderInputIds]: new ort.Tensor('int32', shiftRight(batch.labels, b, t, c.decoderStartTokenId, c.padTokenId), [b, t]),
      [I.labels]: new ort.Tensor('int32', batch.labels, [b, t]),
      [I.encoderBuckets]: this.bucketTable(s, true),
      [I.decoderBuckets]: this.bucketTable(t, false),
      [I.decoderCausalMask]: this.causalMask(t),
    };
  }

  private bucketTable(len: number, bidirectional: boolean): ort.Tensor {
    const key = `${len}:${bidirectional}`;
    let t = this.buckets.get(key);
    if (!t) {
      const table = positionBucketTable(len, len, bidirectional, this.config.numBuckets, this.config.maxDistance);
      t = new ort.Tensor('int32', table, [len, len]);
      this.buckets.set(key, t);
    }
    return t;
  }

  private causalMask(len: number): ort.Tensor {
    let t = this.causal.get(len);
    if (!t) {
      const data = this.dtype === 'float32' ? new Float32Array(len * len) : new Float64Array(len * len);
      const min = finfoMin(this.dtype);
      for (let q = 0; q < len; q++) for (let k = q + 1; k < len; k++) data[q * len + k] = min;
      t = new ort.Tensor(this.dtype, data, [len, len]);
      this.causal.set(len, t);
    }
    return t;
  }

  /** Out-of-range ids would make ORT's Gather fail deep inside the graph; say which row instead. */
  private validate(batch: Seq2SeqBatch): void {
    const { batchSize: b, srcLen: s, tgtLen: t } = batch;
    if (batch.inputIds.length !== b * s || batch.attentionMask.length !== b * s || batch.labels.length !== b * t) {
      throw new EngineError(`batch arrays do not match [${b}, ${s}] / [${b}, ${t}]`);
    }
    const v = this.config.vocabSize;
    const bad = (arr: Int32Array, ok: (x: number) => boolean) => arr.findIndex((x) => !ok(x));
    const i = bad(batch.inputIds, (x) => x >= 0 && x < v);
    if (i >= 0) throw new EngineError(`input_ids[${Math.floor(i / s)}][${i % s}] = ${batch.inputIds[i]} is outside the vocabulary (0..${v - 1})`);
    const l = bad(batch.labels, (x) => x === -100 || (x >= 0 && x < v));
    if (l >= 0) throw new EngineError(`labels[${Math.floor(l / t)}][${l % t}] = ${batch.labels[l]} is outside the vocabulary and not -100`);
  }
}
