import * as ort from 'onnxruntime-node';
import type { CausalLmBatch } from '../../../shared/models/causal-batch.js';
import { NEOX_PRESETS, parseNeoXConfig, type NeoXConfig } from '../../../shared/models/neox-config.js';
import { NeoXFamily } from '../../../shared/models/neox-family.js';
import { buildNeoXGraph, type NeoXGraphOptions } from '../../../shared/models/neox-graph.js';
import { serializeGraph } from '../../../shared/onnx/serialize.js';
import { rngStream } from '../../../shared/random.js';

/** neox-tiny (hidden 32, 2 layers, 4 heads of 8, rotary on 4 dims) with a 40-id vocabulary: small enough for float64 finite differences. */
export function tinyNeoX(overrides: Record<string, unknown> = {}): NeoXConfig {
  return parseNeoXConfig({ ...NEOX_PRESETS['neox-tiny'], vocab_size: 40, ...overrides });
}

/** Two right-padded rows of different lengths; row 0 ignores its first label (a prompt), row 1 is padded. */
export function neoxBatch(): CausalLmBatch {
  return {
    kind: 'causal', batchSize: 2, seqLen: 5,
    inputIds: Int32Array.from([5, 6, 7, 8, 9, 10, 11, 12, 0, 0]),
    attentionMask: Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]),
    labels: Int32Array.from([-100, 6, 7, 8, 9, 10, 11, 12, -100, -100]),
  };
}

/**
 * The same two rows padded on the left (generation's layout). No padding position scores a label:
 * a fully masked query row has all scores at finfo.min, where q.k is absorbed by rounding, so its
 * attention is flat in float64 while its analytic gradient is not (finite differences would see 0).
 */
export function leftPaddedBatch(): CausalLmBatch {
  return {
    kind: 'causal', batchSize: 2, seqLen: 5,
    inputIds: Int32Array.from([5, 6, 7, 8, 9, 0, 0, 10, 11, 12]),
    attentionMask: Int32Array.from([1, 1, 1, 1, 1, 0, 0, 1, 1, 1]),
    labels: Int32Array.from([-100, 6, 7, 8, 9, -100, -100, -100, 11, 12]),
  };
}

export type Params = Map<string, Float64Array>;

/** Random values for the named shapes: N(0, std); LayerNorm weights 1 + N(0, std). */
export function randomValues(specs: readonly { name: string; shape: readonly number[] }[], seed: number, std = 0.3): Params {
  const r = rngStream(seed, 99);
  return new Map(specs.map((s) => {
    const v = new Float64Array(s.shape.reduce((a, b) => a * b, 1));
    const base = /layer_?norm\.weight$/u.test(s.name) ? 1 : 0;
    for (let i = 0; i < v.length; i++) v[i] = base + r.normal() * std;
    return [s.name, v];
  }));
}

/** One session of the whole-model graph (float64 unless options.dtype says otherwise), fed from a name -> float64 values map. */
export class WholeModel {
  private constructor(
    readonly config: NeoXConfig,
    readonly graph: ReturnType<typeof buildNeoXGraph>,
    private readonly session: ort.InferenceSession,
    private readonly family: NeoXFamily,
    readonly dtype: 'float32' | 'float64',
  ) {}

  /** `level`: ORT's graph optimisation, 'all' as the engine uses (see neox-reference.test.ts for what it changes in float64). */
  static async create(config: NeoXConfig, options: Partial<NeoXGraphOptions> = {}, level: 'basic' | 'all' = 'all'): Promise<WholeModel> {
    const graph = buildNeoXGraph(config, { dtype: 'float64', dropout: false, gradients: false, ...options });
    const session = await ort.InferenceSession.create(serializeGraph(graph.graph), { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: level });
    return new WholeModel(config, graph, session, new NeoXFamily(config, options.lora), options.dtype ?? 'float64');
  }

  /** `masks`: dropout keep-masks by site input name (graphs built with dropout). */
  async run(values: Params, batch: CausalLmBatch, masks: Record<string, ort.Tensor> = {}): Promise<Record<string, ort.Tensor>> {
    const feeds: Record<string, ort.Tensor> = { ...this.family.feeds(batch, this.dtype), ...masks };
    for (const name of this.session.inputNames) {
      if (feeds[name]) continue;
      const v = values.get(name);
      if (!v) throw new Error(`no value for ${name}`);
      const shape = [...this.graph.params, ...this.graph.loraParams].find((p) => p.name === name)!.shape;
      feeds[name] = this.dtype === 'float64' ? new ort.Tensor('float64', v, [...shape]) : new ort.Tensor('float32', Float32Array.from(v), [...shape]);
    }
    return this.session.run(feeds);
  }

  async loss(values: Params, batch: CausalLmBatch): Promise<number> {
    return Number((await this.run(values, batch)).loss_sum!.data[0]);
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
