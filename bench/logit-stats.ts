import * as ort from 'onnxruntime-node';
import type { Seq2SeqBatch } from '../shared/models/batch.js';
import type { T5Config } from '../shared/models/t5-config.js';
import { buildT5Graph } from '../shared/models/t5-graph.js';
import { serializeGraph } from '../shared/onnx/serialize.js';
import { EngineOptionsSchema, sessionOptions } from '../shared/onnx/session-options.js';
import { FlatLayout } from '../shared/weights/flat-layout.js';
import { paramFeeds } from '../shared/onnx/param-feeds.js';
import { T5Feeds } from '../shared/models/t5-feeds.js';

// How the logits' gradient looks in float32 for one batch: the gradient of the summed cross-entropy
// with respect to the logits is softmax(logits) - onehot(label), so its entries are the
// probabilities. Those with log p in (ln 2^-149, ln 2^-126) are float32 subnormals (what made the
// lm_head GEMMs crawl before flush-to-zero); below that they underflow to 0.

const LN_MIN_NORMAL = -126 * Math.LN2;
const LN_MIN_SUBNORMAL = -149 * Math.LN2;

export interface LogitStats {
  readonly lossPerToken: number;
  /** Share of the logits' gradient entries that are float32 subnormals. */
  readonly subnormalShare: number;
  /** Share that underflows to exactly 0 in float32. */
  readonly zeroShare: number;
  /** Standard deviation of the logits. */
  readonly logitStd: number;
}

export async function logitStats(config: T5Config, params: Float32Array, batch: Seq2SeqBatch, threads: number): Promise<LogitStats> {
  const built = buildT5Graph(config, { dtype: 'float32', dropout: false, gradients: false, logits: true });
  const session = await ort.InferenceSession.create(serializeGraph(built.graph), sessionOptions(EngineOptionsSchema.parse({ intraOpThreads: threads })));
  try {
    const layout = FlatLayout.fromSpecs(built.params);
    const feeds = { ...new T5Feeds(config, 'float32').feeds(batch), ...paramFeeds(layout, params, built.params.map((p) => p.name)) };
    const out = await session.run(feeds, ['logits', 'loss_sum', 'token_count']);
    const logits = out.logits!.data as Float32Array;
    const v = config.vocabSize;
    let subnormal = 0;
    let zero = 0;
    let sum = 0;
    let sumSq = 0;
    for (let row = 0; row < logits.length / v; row++) {
      const l = logits.subarray(row * v, (row + 1) * v);
      let max = -Infinity;
      for (const x of l) max = Math.max(max, x);
      let z = 0;
      for (const x of l) z += Math.exp(x - max);
      const logZ = max + Math.log(z);
      for (const x of l) {
        const lp = x - logZ; // in float64: no flushing, whatever the thread's flags
        if (lp < LN_MIN_SUBNORMAL) zero++;
        else if (lp < LN_MIN_NORMAL) subnormal++;
        sum += x;
        sumSq += x * x;
      }
    }
    const n = logits.length;
    return {
      lossPerToken: Number(out.loss_sum!.data[0]) / Number(out.token_count!.data[0]),
      subnormalShare: subnormal / n,
      zeroShare: zero / n,
      logitStd: Math.sqrt(sumSq / n - (sum / n) ** 2),
    };
  } finally {
    await session.release();
  }
}
