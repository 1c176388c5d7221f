import type { T5Config } from '../models/t5-config.js';
import { finfoMin } from '../models/t5-layers.js';
import { positionBucketTable, relativePositionBucket } from '../models/t5-position-buckets.js';

// The small per-shape tables the generation graphs take: encoder position buckets [src, src], and
// for a decoder step the buckets and causal mask of the new queries (absolute positions
// past .. past + step - 1) against every key (0 .. past + step - 1), unidirectional as HF's decoder.
// They depend only on lengths, so each is made once and reused.

export class StepTables {
  private readonly encoder = new Map<number, Int32Array>();
  private readonly decoder = new Map<string, { readonly buckets: Int32Array; readonly causal: Float32Array }>();

  constructor(private readonly config: T5Config) {}

  encoderBuckets(srcLen: number): Int32Array {
    let t = this.encoder.get(srcLen);
    if (!t) {
      t = positionBucketTable(srcLen, srcLen, true, this.config.numBuckets, this.config.maxDistance);
      this.encoder.set(srcLen, t);
    }
    return t;
  }

  /** Buckets [step, past + step] and causal mask (0 or finfo.min) of the same shape. */
  decoderStep(pastLen: number, stepLen: number): { readonly buckets: Int32Array; readonly causal: Float32Array } {
    const key = `${pastLen}:${stepLen}`;
    let t = this.decoder.get(key);
    if (!t) {
      const total = pastLen + stepLen;
      const buckets = new Int32Array(stepLen * total);
      const causal = new Float32Array(stepLen * total);
      const min = finfoMin('float32');
      for (let q = 0; q < stepLen; q++) {
        const position = pastLen + q;
        for (let k = 0; k < total; k++) {
          buckets[q * total + k] = relativePositionBucket(k - position, false, this.config.numBuckets, this.config.maxDistance);
          if (k > position) causal[q * total + k] = min;
        }
      }
      t = { buckets, causal };
      this.decoder.set(key, t);
    }
    return t;
  }
}
