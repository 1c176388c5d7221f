import type { Seq2SeqBatch } from '../shared/models/batch.js';
import { adamWStep, AdamWState, type AdamWHyperParams } from '../shared/optim/adamw.js';
import { clipCoefficient, sumOfSquares } from '../shared/optim/clip.js';
import { decayRanges } from '../shared/optim/decay-ranges.js';
import type { LrSchedule } from '../shared/optim/schedules.js';
import type { FlatLayout } from '../shared/weights/flat-layout.js';
import type { T5Engine } from './engine/t5-engine.js';

// One process, one engine: the step the distributed trainer performs, without the network.
// Gradients are sums over tokens; the step divides by the step's total token count, so any split
// of the same samples into micro-batches gives the same update (up to float32 summation order).

export interface MicroBatch {
  readonly batch: Seq2SeqBatch;
  /** Dataset indices of the rows (they key the dropout masks). */
  readonly sampleIndices: readonly number[];
}

export interface StepReport {
  readonly step: number;
  /** Token-mean loss of the step. */
  readonly loss: number;
  readonly tokens: number;
  readonly gradNorm: number;
  readonly lr: number;
}

export interface SingleProcessTrainerOptions {
  readonly engine: T5Engine;
  readonly layout: FlatLayout;
  readonly params: Float32Array;
  readonly adamw: AdamWHyperParams;
  readonly schedule: LrSchedule;
  /** Global-norm clipping (HF max_grad_norm); 0 or less turns it off. */
  readonly maxGradNorm: number;
  readonly seed: number;
}

export class SingleProcessTrainer {
  private readonly grad: Float32Array;
  /** Second gradient buffer, allocated only when a step has several micro-batches. */
  private scratch: Float32Array | null = null;
  private readonly state: AdamWState;
  private readonly ranges;

  constructor(private readonly o: SingleProcessTrainerOptions) {
    const n = o.params.length;
    this.grad = new Float32Array(n);
    this.state = new AdamWState(0, n);
    this.ranges = decayRanges(o.layout.params, 0, n);
  }

  get stepsTaken(): number {
    return this.state.step;
  }

  /** Forward+backward over the micro-batches, then one clipped AdamW step. */
  async step(microBatches: readonly MicroBatch[]): Promise<StepReport> {
    const { engine, params } = this.o;
    const step = this.state.step;
    let lossSum = 0;
    let tokens = 0;
    for (const [i, mb] of microBatches.entries()) {
      // The first micro-batch writes the gradient in place; later ones are added to it.
      const target = i === 0 ? this.grad : (this.scratch ??= new Float32Array(params.length));
      const r = await engine.forwardBackward(params, target, mb.batch, { seed: this.o.seed, step, sampleIndices: mb.sampleIndices });
      if (i > 0) for (let k = 0; k < target.length; k++) this.grad[k]! += target[k]!;
      lossSum += r.lossSum;
      tokens += r.tokenCount;
    }
    if (tokens === 0) throw new RangeError(`step ${step}: the micro-batches hold no label tokens`);
    const scale = 1 / tokens;
    const sumSq = sumOfSquares(this.grad) * scale * scale;
    const coefficient = this.o.maxGradNorm > 0 ? clipCoefficient(sumSq, this.o.maxGradNorm) : 1;
    const lr = this.o.schedule.lrAt(step);
    adamWStep(this.state, this.o.adamw, { params, grads: this.grad, lr, ranges: this.ranges, gradScale: scale * coefficient });
    return { step, loss: lossSum / tokens, tokens, gradNorm: Math.sqrt(sumSq), lr };
  }
}
