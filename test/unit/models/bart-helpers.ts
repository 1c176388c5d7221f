import * as ort from 'onnxruntime-node';
import type { Seq2SeqBatch } from '../../../shared/models/batch.js';
import { BART_PRESETS, parseBartConfig, type BartConfig } from '../../../shared/models/bart-config.js';
import { BartFamily } from '../../../shared/models/bart-family.js';
import { buildBartGraph, type BartGraphOptions } from '../../../shared/models/bart-graph.js';
import { serializeGraph } from '../../../shared/onnx/serialize.js';
import { rngStream } from '../../../shared/random.js';

/**
 * bart-tiny cut down for float64 finite differences: vocab 40, d_model 16, 2 + 2 layers of 4 heads
 * (head_dim 4), ffn 24 (encoder) / 32 (decoder, so a swapped dimension cannot pass), 12 positions,
 * scale_embedding on (the sqrt(d_model) factor is exercised), dropout off unless overridden.
 */
export function tinyBart(overrides: Record<string, unknown> = {}): BartConfig {
  return parseBartConfig({
    ...BART_PRESETS['bart-tiny'], vocab_size: 40, d_model: 16, encoder_ffn_dim: 24, decoder_ffn_dim: 32, max_position_embeddings: 12,
    scale_embedding: true, dropout: 0, ...overrides,
  });
}

/** Two rows: row 0 fills both lengths; row 1's input is padded (pad 0) and its labels end in -100. */
export function bartBatch(): Seq2SeqBatch {
  return {
    batchSize: 2, srcLen: 5, tgtLen: 4,
    inputIds: Int32Array.from([5, 6, 7, 8, 1, 9, 10, 11, 1, 0]),
    attentionMask: Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 1, 0]),
    labels: Int32Array.from([12, 13, 14, 1, 15, 16, 1, -100]),
  };
}

export type Params = Map<string, Float64Array>;

/** Random values for the named shapes: N(0, std); LayerNorm weights 1 + N(0, std). */
export function randomValues(specs: readonly { name: string; shape: readonly number[] }[], seed: number, std = 0.3): Params {
  const r = rngStream(seed, 99);
  return new Map(specs.map((s) => {
    const v = new Float64Array(s.shape.reduce((a, b) => a * b, 1));
    const base = /(layer_?norm|layernorm_embedding)[^.]*\.weight$/u.test(s.name) ? 1 : 0;
    for (let i = 0; i < v.length; i++) v[i] = base + r.normal() * std;
    return [s.name, v];
  }));
}

/** Every tensor the family feeds (frozen + trainable), random. */
export function familyValues(family: BartFamily, seed: number): Params {
  return new Map([...randomValues(family.frozenSpecs(), seed), ...randomValues(family.paramSpecs(), seed + 1)]);
}

/** One session of the whole-model graph, fed from a name -> float64 values map. */
export class WholeBart {
  private constructor(
    readonly config: BartConfig,
    readonly graph: ReturnType<typeof buildBartGraph>,
    private readonly session: ort.InferenceSession,
    private readonly family: BartFamily,
    readonly dtype: 'float32' | 'float64',
  ) {}

  static async create(config: BartConfig, options: Partial<BartGraphOptions> = {}): Promise<WholeBart> {
    const graph = buildBartGraph(config, { dtype: 'float64', dropout: false, gradients: false, ...options });
    const session = await ort.InferenceSession.create(serializeGraph(graph.graph), { intraOpNumThreads: 1, interOpNumThreads: 1 });
    return new WholeBart(config, graph, session, new BartFamily(config, options.lora ?? null), options.dtype ?? 'float64');
  }

  async run(values: Params, batch: Seq2SeqBatch, masks: Record<string, ort.Tensor> = {}): Promise<Record<string, ort.Tensor>> {
    const feeds: Record<string, ort.Tensor> = { ...this.family.feeds(batch, this.dtype), ...masks };
    const shapes = new Map([...this.graph.params, ...this.graph.buffers, ...this.graph.adapters].map((p) => [p.name, p.shape]));
    for (const name of this.session.inputNames) {
      if (feeds[name]) continue;
      const v = values.get(name);
      if (!v) throw new Error(`no value for ${name}`);
      const shape = [...shapes.get(name)!];
      feeds[name] = this.dtype === 'float64' ? new ort.Tensor('float64', v, shape) : new ort.Tensor('float32', Float32Array.from(v), shape);
    }
    return this.session.run(feeds);
  }

  async loss(values: Params, batch: Seq2SeqBatch): Promise<number> {
    return Number((await this.run(values, batch)).loss_sum!.data[0]);
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
