import { WeightsMismatchError } from '../errors.js';
import type { T5Config } from '../models/t5-config.js';
import { t5ParamSpecs, type ParamSpec } from '../models/t5-params.js';
import { rngStream, RngDomain } from '../random.js';
import type { FlatLayout, FlatParam } from './flat-layout.js';

// Fresh weights with the semantics of transformers' `_init_weights`, from each ParamSpec's init:
// 'normal' ~ N(0, std) (for T5 the std already includes initializer_factor), 'ones' filled with
// `onesValue` (T5: `fill_(factor * 1.0)`, i.e. ones by default; GPT-NeoX LayerNorm weights: 1),
// 'zeros' (biases). Parameter i draws from its own stream rngStream(seed, RngDomain.init, i),
// element j from words (2*floor(j/2), +1) of it: any element range can be produced on its own, so
// the result does not depend on how many threads or ranks share the work. (Same distribution as
// PyTorch, not the same numbers: torch's CPU generator is a different algorithm.)

/** The whole flat parameter buffer of a T5, freshly initialised. */
export function initT5Flat(config: T5Config, layout: FlatLayout, seed: number): Float32Array {
  return initT5FlatRange(config, layout, seed, 0, layout.totalSize);
}

/**
 * Elements [begin, end) of the initialised T5 flat buffer, e.g. one ZeRO rank's slice; equal to
 * `initT5Flat(...).subarray(begin, end)` bit for bit.
 */
export function initT5FlatRange(config: T5Config, layout: FlatLayout, seed: number, begin: number, end: number): Float32Array {
  return initFlatRange(t5ParamSpecs(config), layout, seed, begin, end, config.initializerFactor);
}

/**
 * Elements [begin, end) of the flat buffer initialised from `specs` (which must be the specs the
 * layout was built from; checked), any model family. 'ones' parameters are filled with `onesValue`.
 */
export function initFlatRange(specs: readonly ParamSpec[], layout: FlatLayout, seed: number, begin: number, end: number, onesValue = 1): Float32Array {
  checkLayoutMatchesSpecs(specs, layout);
  if (!(Number.isSafeInteger(begin) && Number.isSafeInteger(end) && 0 <= begin && begin <= end && end <= layout.totalSize)) {
    throw new RangeError(`init range [${begin}, ${end}) is not inside [0, ${layout.totalSize})`);
  }
  const out = new Float32Array(end - begin);
  for (const p of layout.paramsInRange(begin, end)) {
    const from = Math.max(begin, p.offset) - p.offset;
    const to = Math.min(end, p.offset + p.size) - p.offset;
    fillParam(p, onesValue, seed, from, to, out.subarray(p.offset + from - begin, p.offset + to - begin));
  }
  return out;
}

/** Elements [from, to) of parameter p into dest (length to - from). */
function fillParam(p: FlatParam, onesValue: number, seed: number, from: number, to: number, dest: Float32Array): void {
  if (p.init.kind === 'ones') {
    dest.fill(onesValue);
    return;
  }
  if (p.init.kind === 'zeros') return; // a fresh Float32Array is zeros
  const stream = rngStream(seed, RngDomain.init, p.index);
  if (p.init.kind === 'uniform') {
    stream.seek(from); // one word per element
    stream.fillUniform(dest, -p.init.bound, p.init.bound);
    return;
  }
  const pairStart = from - (from % 2);
  stream.seek(pairStart); // element j uses words 2*floor(j/2) and 2*floor(j/2)+1
  if (from % 2 === 1) {
    // The range starts on the sine half of a pair: draw the pair, keep its second value.
    const pair = new Float32Array(2);
    stream.fillNormal(pair, 0, p.init.std);
    dest[0] = pair[1]!;
    stream.fillNormal(dest.subarray(1), 0, p.init.std);
  } else {
    stream.fillNormal(dest, 0, p.init.std);
  }
  const row = p.init.zeroRow;
  if (row !== undefined) {
    // HF's _init_weights: `weight.data[padding_idx].zero_()` after the normal draw.
    const width = p.size / p.shape[0]!;
    const lo = Math.max(from, row * width);
    const hi = Math.min(to, (row + 1) * width);
    if (lo < hi) dest.fill(0, lo - from, hi - from);
  }
}

function checkLayoutMatchesSpecs(specs: readonly ParamSpec[], layout: FlatLayout): void {
  const same =
    specs.length === layout.params.length &&
    specs.every((s, i) => s.name === layout.params[i]!.name && s.shape.join(',') === layout.params[i]!.shape.join(','));
  if (!same) throw new WeightsMismatchError('the flat layout was not built from these parameter specs (another config?)');
}
