// The collectives a worker step uses on the flat buffer (see shared/sharding/flat-shard.ts):
// rank r owns the contiguous range [r L/N, (r+1) L/N) of a buffer of padded length L.

export interface Collective {
  readonly rank: number;
  readonly world: number;
  /**
   * In place on the full padded flat buffer: afterwards rank r's own range holds the SUM over ranks
   * of that range (other ranges: unspecified). `tag` identifies the operation (e.g.
   * `step-12/grads`) so concurrent or stale traffic can never mix; use each tag for one operation.
   */
  reduceScatter(buf: Float32Array, tag: string): Promise<void>;
  /**
   * Reduce-scatter of one contiguous piece [offset, offset + buf.length) of a padded flat buffer of
   * length `paddedLength` (ZeRO-2 gradient buckets: each block's gradients are reduced as soon as they
   * exist). Afterwards the part of `buf` that falls in this rank's own range holds the SUM over ranks;
   * other parts are unspecified. Every rank calls it with the same offset, length and tag.
   */
  reduceScatterRange(buf: Float32Array, offset: number, paddedLength: number, tag: string): Promise<void>;
  /** In place: afterwards every range holds its owner's values. */
  allGather(buf: Float32Array, tag: string): Promise<void>;
  /** reduceScatter then allGather (ZeRO stage 0's all-reduce). */
  allReduce(buf: Float32Array, tag: string): Promise<void>;
  /** Payload bytes this rank has sent since creation (for the bandwidth-optimal check). */
  readonly bytesSent: number;
  close(): Promise<void>;
}
