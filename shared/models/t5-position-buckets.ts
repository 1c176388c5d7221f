// T5 relative position buckets, computed in JS once per sequence length and fed to the graph as
// an int32 [query, key] table (gathered into the bias). HF computes them in float32
// (`_relative_position_bucket`), so every float step here is rounded to float32 with Math.fround:
// a float64 computation could land on the other side of an integer and change a bucket.

export function relativePositionBucket(
  relativePosition: number,
  bidirectional: boolean,
  numBuckets: number,
  maxDistance: number,
): number {
  let buckets = 0;
  let n = numBuckets;
  let rp = relativePosition;
  if (bidirectional) {
    n = Math.floor(n / 2);
    if (rp > 0) buckets += n;
    rp = Math.abs(rp);
  } else {
    rp = -Math.min(rp, 0);
  }
  const maxExact = Math.floor(n / 2);
  if (rp < maxExact) return buckets + rp;
  const f = Math.fround;
  const ratio = f(f(rp) / f(maxExact));
  const scaled = f(f(f(Math.log(ratio)) / f(Math.log(maxDistance / maxExact))) * f(n - maxExact));
  const large = Math.min(maxExact + Math.trunc(scaled), n - 1);
  return buckets + large;
}

/** [queryLen, keyLen] bucket ids; position bias = bias_table[bucket] (memory - context positions). */
export function positionBucketTable(
  queryLen: number,
  keyLen: number,
  bidirectional: boolean,
  numBuckets: number,
  maxDistance: number,
): Int32Array {
  const table = new Int32Array(queryLen * keyLen);
  // The bucket depends only on key - query, so compute each distinct distance once.
  const byDistance = new Int32Array(queryLen + keyLen - 1);
  for (let d = -(queryLen - 1); d < keyLen; d++) {
    byDistance[d + queryLen - 1] = relativePositionBucket(d, bidirectional, numBuckets, maxDistance);
  }
  for (let q = 0; q < queryLen; q++) {
    for (let k = 0; k < keyLen; k++) table[q * keyLen + k] = byDistance[k - q + queryLen - 1]!;
  }
  return table;
}

/** T5's decoder inputs: labels shifted right, decoder_start_token_id first, -100 replaced by pad. */
export function shiftRight(labels: Int32Array, batchSize: number, tgtLen: number, decoderStartTokenId: number, padTokenId: number): Int32Array {
  const out = new Int32Array(batchSize * tgtLen);
  for (let b = 0; b < batchSize; b++) {
    out[b * tgtLen] = decoderStartTokenId;
    for (let t = 1; t < tgtLen; t++) {
      const v = labels[b * tgtLen + t - 1]!;
      out[b * tgtLen + t] = v === -100 ? padTokenId : v;
    }
  }
  return out;
}
