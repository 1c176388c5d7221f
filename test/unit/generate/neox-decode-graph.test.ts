import test from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import type { CausalLmBatch } from '../../../shared/models/causal-batch.js';
import type { NeoXConfig } from '../../../shared/models/neox-config.js';
import {
  buildNeoXDecodeGraph, DECODE_LOG_PROBS, neoxPastKey, neoxPastValue, neoxPresentKey, neoxPresentValue,
} from '../../../shared/models/neox-decode-graph.js';
import { positionIds } from '../../../shared/models/neox-family.js';
import { PEFT_PREFIX } from '../../../shared/models/lora.js';
import { serializeGraph } from '../../../shared/onnx/serialize.js';
import { mergeAdapter, type AdapterTensor } from '../../../shared/weights/peft-adapter.js';
import { randomValues, tinyNeoX, WholeModel, type Params } from '../models/neox-helpers.js';

// The decoding graph against the whole-model training graph (neox-graph.ts with its `logits`
// output), on the same random weights (N(0, 0.3): larger than HF's init, so attention is not flat):
// - prefill: log_probs = log_softmax of the whole graph's logits at the last position, rows padded
//   on the left (as generation pads), float64 to 1e-12 and float32 to 2e-5;
// - a cached step: the prompt less its last token as the prefill, then that token alone with the
//   present keys/values as past = the same log_probs (float64, 1e-12), and present has past + 1 positions;
// - LoRA: the graph on merged weights (mergeAdapter: W + scale B A) = the whole graph with the
//   adapters as inputs (float32, 2e-5; the merge rounds W + scale BA to float32 once).

const config = tinyNeoX();

/** Two prompts padded on the left: row 0 full (5 tokens), row 1 three tokens after two pads. */
const IDS = Int32Array.from([5, 6, 7, 8, 9, 0, 0, 10, 11, 12]);
const MASK = Int32Array.from([1, 1, 1, 1, 1, 0, 0, 1, 1, 1]);
const ROWS = 2;
const LEN = 5;

function batchOf(ids: Int32Array, mask: Int32Array, rows: number, len: number): CausalLmBatch {
  return { kind: 'causal', batchSize: rows, seqLen: len, inputIds: ids, attentionMask: mask, labels: new Int32Array(rows * len).fill(-100) };
}

/** log_softmax of logits [rows, len, vocab] at position len - 1, [rows, vocab]. */
function lastLogSoftmax(logits: ArrayLike<number>, rows: number, len: number, vocab: number): Float64Array {
  const out = new Float64Array(rows * vocab);
  for (let r = 0; r < rows; r++) {
    const base = (r * len + len - 1) * vocab;
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) max = Math.max(max, Number(logits[base + v]));
    let sum = 0;
    for (let v = 0; v < vocab; v++) sum += Math.exp(Number(logits[base + v]) - max);
    for (let v = 0; v < vocab; v++) out[r * vocab + v] = Number(logits[base + v]) - max - Math.log(sum);
  }
  return out;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(Number(a[i]) - Number(b[i])));
  return worst;
}

class DecodeGraph {
  private constructor(
    private readonly c: NeoXConfig,
    private readonly session: ort.InferenceSession,
    private readonly dtype: 'float32' | 'float64',
    private readonly params: ReturnType<typeof buildNeoXDecodeGraph>['params'],
  ) {}

  static async create(c: NeoXConfig, dtype: 'float32' | 'float64'): Promise<DecodeGraph> {
    const built = buildNeoXDecodeGraph(c, dtype);
    const session = await ort.InferenceSession.create(serializeGraph(built.graph), { intraOpNumThreads: 1, interOpNumThreads: 1 });
    return new DecodeGraph(c, session, dtype, built.params);
  }

  /** `past`: per layer keys and values [rows, heads, past, head] (none: past 0). */
  async run(values: Params, ids: Int32Array, mask: Int32Array, positions: Int32Array, rows: number, past: { keys: ort.Tensor[]; values: ort.Tensor[] } | null) {
    const newLen = ids.length / rows;
    const tensor = (data: ArrayLike<number>, shape: readonly number[]) =>
      this.dtype === 'float64' ? new ort.Tensor('float64', Float64Array.from(data), [...shape]) : new ort.Tensor('float32', Float32Array.from(data), [...shape]);
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int32', ids, [rows, newLen]),
      attention_mask: new ort.Tensor('int32', mask, [rows, mask.length / rows]),
      position_ids: new ort.Tensor('int32', positions, [rows, newLen]),
    };
    for (const p of this.params) feeds[p.name] = tensor(values.get(p.name)!, p.shape);
    for (let i = 0; i < this.c.numLayers; i++) {
      const empty = tensor([], [rows, this.c.numHeads, 0, this.c.headSize]);
      feeds[neoxPastKey(i)] = past ? past.keys[i]! : empty;
      feeds[neoxPastValue(i)] = past ? past.values[i]! : empty;
    }
    const out = await this.session.run(feeds);
    const layers = Array.from({ length: this.c.numLayers }, (_, i) => i);
    return { logProbs: out[DECODE_LOG_PROBS]!.data as Float64Array | Float32Array, keys: layers.map((i) => out[neoxPresentKey(i)]!), values: layers.map((i) => out[neoxPresentValue(i)]!) };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

for (const [dtype, tolerance] of [['float64', 1e-12], ['float32', 2e-5]] as const) {
  test(`${dtype}: the prefill's log_probs = log_softmax of the whole graph's last-position logits, left padding (within ${tolerance})`, async () => {
    const values = randomValues([...buildNeoXDecodeGraph(config).params], 3);
    const whole = await WholeModel.create(config, { logits: true, dtype });
    const decode = await DecodeGraph.create(config, dtype);
    try {
      const logits = (await whole.run(values, batchOf(IDS, MASK, ROWS, LEN))).logits!.data as Float64Array;
      const expected = lastLogSoftmax(logits, ROWS, LEN, config.vocabSize);
      const got = await decode.run(values, IDS, MASK, positionIds(MASK, ROWS, LEN), ROWS, null);
      assert.deepEqual(got.keys[0]!.dims, [ROWS, config.numHeads, LEN, config.headSize]);
      const d = maxDiff(got.logProbs, expected);
      assert.ok(d <= tolerance, `prefill differs by ${d}`);
    } finally {
      await whole.release();
      await decode.release();
    }
  });
}

test('float64: prefill of all but the last token, then a cached step of it = the prefill of the whole prompt (within 1e-12)', async () => {
  const values = randomValues([...buildNeoXDecodeGraph(config).params], 4);
  const decode = await DecodeGraph.create(config, 'float64');
  try {
    const whole = await decode.run(values, IDS, MASK, positionIds(MASK, ROWS, LEN), ROWS, null);
    const head = (a: Int32Array) => Int32Array.from([...a.subarray(0, LEN - 1), ...a.subarray(LEN, 2 * LEN - 1)]);
    const prefill = await decode.run(values, head(IDS), head(MASK), positionIds(head(MASK), ROWS, LEN - 1), ROWS, null);
    const positions = positionIds(MASK, ROWS, LEN);
    const step = await decode.run(values, Int32Array.of(IDS[LEN - 1]!, IDS[2 * LEN - 1]!), MASK, Int32Array.of(positions[LEN - 1]!, positions[2 * LEN - 1]!), ROWS, prefill);
    assert.deepEqual(step.keys[1]!.dims, [ROWS, config.numHeads, LEN, config.headSize]);
    const d = maxDiff(step.logProbs, whole.logProbs);
    assert.ok(d <= 1e-12, `cached step differs by ${d}`);
    assert.ok(maxDiff(step.values[0]!.data as Float64Array, whole.values[0]!.data as Float64Array) <= 1e-12, 'present values');
  } finally {
    await decode.release();
  }
});

test('LoRA: the decoding graph on merged weights = the whole graph with adapters (float32, within 2e-5)', async () => {
  const lora = { r: 2, alpha: 4, targets: ['query_key_value', 'dense_4h_to_h'] };
  const whole = await WholeModel.create(config, { logits: true, dtype: 'float32', lora });
  const decode = await DecodeGraph.create(config, 'float32');
  try {
    const values = randomValues([...whole.graph.params, ...whole.graph.loraParams], 5);
    const toF32 = (v: Float64Array) => Float32Array.from(v);
    const base = new Map<string, AdapterTensor>(whole.graph.params.map((p) => [p.name, { shape: p.shape, data: toF32(values.get(p.name)!) }]));
    const adapterTensors = new Map<string, AdapterTensor>(whole.graph.loraParams.map((p) => [p.name, { shape: p.shape, data: toF32(values.get(p.name)!) }]));
    assert.ok([...adapterTensors.keys()].every((n) => n.startsWith(PEFT_PREFIX)));
    const config_ = { peft_type: 'LORA' as const, r: 2, lora_alpha: 4, lora_dropout: 0, bias: 'none' as const, fan_in_fan_out: false as const, use_rslora: false, use_dora: false as const, rank_pattern: {}, alpha_pattern: {}, modules_to_save: null };
    const merged = mergeAdapter(base, { config: config_, tensors: adapterTensors });
    const mergedValues: Params = new Map([...merged].map(([n, t]) => [n, Float64Array.from(t.data)]));
    const logits = (await whole.run(values, batchOf(IDS, MASK, ROWS, LEN))).logits!.data as Float32Array;
    const expected = lastLogSoftmax(logits, ROWS, LEN, config.vocabSize);
    const got = await decode.run(mergedValues, IDS, MASK, positionIds(MASK, ROWS, LEN), ROWS, null);
    const d = maxDiff(got.logProbs, expected);
    assert.ok(d <= 2e-5, `merged LoRA differs by ${d}`);
    // The adapters matter: without them the model is another one.
    const plain = await decode.run(values, IDS, MASK, positionIds(MASK, ROWS, LEN), ROWS, null);
    assert.ok(maxDiff(plain.logProbs, expected) > 1e-3);
  } finally {
    await whole.release();
    await decode.release();
  }
});
