import type { DecoderStepper } from './decoder-stepper.js';
import type { GenerateOptions, SpecialTokens } from './generate-options.js';
import type { GeneratedSequence, SequencePrefixes } from './greedy-search.js';
import { processorSettings, processScores, topIndices } from './logits-processors.js';

// Beam search as HF `generate(num_beams=K)` (transformers' vectorised `_beam_search`, 4.5x), per item:
// - running beams start as K copies of the start token with scores [0, -1e9, ...] (only the first
//   contributes to the first step);
// - each step: log_softmax of the logits (float32, in the graph), processors, plus the beam's
//   running sum; the top 2K candidates over all K x vocab (ties: lower index first);
// - a candidate that ends (eos, or the max_new_tokens-th token) becomes a finished hypothesis if it
//   ranks among the top K, scored sum / length ** length_penalty with length = tokens generated,
//   eos included; the K best hypotheses are kept;
// - the next running beams are the K best candidates that do not end;
// - an item is done when it has K hypotheses and (early_stopping true) at once, or (false) when the
//   best running sum / current length ** length_penalty cannot beat the worst hypothesis, or
//   ('never') when the best running sum / max_new_tokens ** length_penalty cannot; or at max length.
// The result is the best hypothesis. Running sums are float64 here (HF: float32), so rankings can
// differ from HF's only where float32 rounding decides between near-equal sums.

export type BeamSearchOptions = Pick<GenerateOptions, 'maxNewTokens' | 'minNewTokens' | 'noRepeatNgramSize' | 'lengthPenalty' | 'earlyStopping'>;

/** Fills a running beam that must never win (HF: -1e9). */
const INACTIVE_BEAM_SCORE = -1e9;

interface Running {
  readonly tokens: number[];
  readonly sum: number;
}

/** The best `size` finished hypotheses of one item, best first (HF BeamHypotheses). */
class FinishedHypotheses {
  readonly list: { readonly tokens: number[]; readonly score: number }[] = [];
  constructor(private readonly size: number) {}

  get full(): boolean {
    return this.list.length >= this.size;
  }

  get worstScore(): number {
    return this.list[this.list.length - 1]!.score;
  }

  /** HF keeps K slots that start at -1e9: a hypothesis scoring no better than that never enters. */
  add(tokens: number[], score: number): void {
    if (!(score > INACTIVE_BEAM_SCORE) || (this.full && !(score > this.worstScore))) return;
    let at = this.list.length;
    while (at > 0 && this.list[at - 1]!.score < score) at--;
    this.list.splice(at, 0, { tokens, score });
    if (this.list.length > this.size) this.list.pop();
  }
}

interface ItemState {
  running: Running[];
  readonly finished: FinishedHypotheses;
  /** HF `is_early_stop_heuristic_unsatisfied`: hypotheses may still be added. */
  open: boolean;
}

/** `prefixes`: as greedySearch's (NoRepeatNGram's view of what precedes the generated tokens). */
export async function beamSearch(stepper: DecoderStepper, o: BeamSearchOptions, special: SpecialTokens, prefixes?: SequencePrefixes): Promise<GeneratedSequence[]> {
  const K = stepper.beams;
  const items = stepper.items;
  const settings = processorSettings(o, special);
  const states: ItemState[] = Array.from({ length: items }, () => ({
    running: Array.from({ length: K }, (_, b) => ({ tokens: [], sum: b === 0 ? 0 : INACTIVE_BEAM_SCORE })),
    finished: new FinishedHypotheses(K),
    open: true,
  }));
  let active = Array.from({ length: items }, (_, i) => i); // original item of each stepper item
  let tokens = new Int32Array(items * K).fill(special.decoderStartId);

  for (let step = 0; step < o.maxNewTokens && active.length > 0; step++) {
    const length = step + 1; // tokens generated, this step's included
    const last = length === o.maxNewTokens;
    const logProbs = await stepper.next(tokens);
    const vocab = logProbs.length / (active.length * K);
    const keptItems: number[] = [];
    const rows: number[] = [];
    const next: number[] = [];
    active.forEach((item, a) => {
      const st = states[item]!;
      // The top 2K of all K x vocab candidates are among each beam's own top 2K: one scan of each
      // beam's row, not K x vocab sums.
      const pool: { readonly index: number; readonly sum: number }[] = [];
      for (let b = 0; b < K; b++) {
        const beam = st.running[b]!;
        const row = logProbs.subarray((a * K + b) * vocab, (a * K + b + 1) * vocab);
        processScores(row, [...(prefixes?.[item] ?? [special.decoderStartId]), ...beam.tokens], step, settings);
        for (const v of topIndices(row, 2 * K)) pool.push({ index: b * vocab + v, sum: beam.sum + row[v]! });
      }
      // As torch.topk over the flattened K x vocab scores: descending, ties to the lower index.
      pool.sort((p, q) => q.sum - p.sum || p.index - q.index);
      const top = pool.slice(0, 2 * K);
      const canAdd = st.open && !(o.earlyStopping === true && st.finished.full);
      const running: (Running & { readonly from: number })[] = [];
      top.forEach(({ index, sum }, rank) => {
        const from = Math.floor(index / vocab);
        const token = index - from * vocab;
        const seq = [...st.running[from]!.tokens, token];
        if (token === special.eosId || last) {
          if (rank < K && canAdd) st.finished.add(seq, sum / length ** o.lengthPenalty);
        } else if (running.length < K) {
          running.push({ tokens: seq, sum, from });
        }
      });
      if (last) return;
      if (st.finished.full) {
        const bestLength = o.earlyStopping === 'never' && o.lengthPenalty > 0 ? o.maxNewTokens : length;
        st.open = st.open && running[0]!.sum / bestLength ** o.lengthPenalty > st.finished.worstScore;
      }
      if (!st.open || (o.earlyStopping === true && st.finished.full)) return;
      st.running = running;
      keptItems.push(a);
      for (const r of running) {
        rows.push(a * K + r.from);
        next.push(r.tokens[r.tokens.length - 1]!);
      }
    });
    active = keptItems.map((a) => active[a]!);
    if (active.length > 0) stepper.select(keptItems, rows);
    tokens = Int32Array.from(next);
  }
  // An item with no hypothesis (every candidate banned) gets HF's empty slot: nothing, score -1e9.
  return states.map((st) => {
    const best = st.finished.list[0];
    return best ? { tokens: best.tokens, score: best.score } : { tokens: [], score: INACTIVE_BEAM_SCORE };
  });
}
