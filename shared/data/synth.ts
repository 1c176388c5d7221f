import { randomBytes } from 'node:crypto';
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { rngStream, type RngStream } from '../random.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { DataRng, randomBelow } from './data-rng.js';
import { DataRules } from './data-rules.js';

// A synthetic set shaped like the team's V4 (76,472 + 3,000 rows; inputs 500-999 tokens, mean about
// 725; about 10 keyphrases per target) for scale tests of prepare, sampling and training. The text
// is Korean-looking — nouns made of common Hangul syllables, particles, predicates, numbers — and
// is not news. Everything comes from the built-in tables below and the seed, so the same seed
// gives the same bytes on any machine, with or without the shipped sample set.
//
// Lengths are measured in the given tokenizer's tokens: the input is
// `"generate keyphrases: " + title + " " + body` plus eos, and the body is grown word by word with
// each word's token count looked up once (`tokens(" " + word)`). That sum is exact for the byte
// tokenizer, and for byte-level BPE too, whose pre-tokenizer splits text into space-led words
// before merging, so a word's tokens do not depend on its neighbours.

const SYLLABLES = [...'가각간감강개거건검경계고공과관광교구국군권규균그금기김나남내노농다단당대도동두드등라래력련령로록료류리마만망매명모목무문물미민박반발방배백범법변보복본부북분비사산상새생서석선설성세소속손수순시식신실심안양어업여역연영예오온외용우운원위유육윤은의이인일임자작장재전정제조종주준중지직진질집차참창책처천청체초총최추축출충측치타태토통투특파판평포표품피하학한합항해행향허현협형호화확환활회효후훈희'];
const PARTICLES = ['은', '는', '이', '가', '을', '를', '에', '에서', '의', '로', '와', '과', '도', '까지'];
const PREDICATES = ['했다.', '밝혔다.', '말했다.', '전했다.', '있다.', '됐다.', '예정이다.', '설명했다.', '강조했다.', '나타났다.', '발표했다.', '지적했다.'];
const ADVERBS = ['또한', '이번', '지난', '올해', '최근', '특히', '다만', '이에', '앞서', '현재'];
const ACRONYMS = ['AI', 'KTX', 'ESG', 'GDP', 'IT', 'LH'];
const COUNTERS = ['일', '년', '월', '%', '명', '억 원', '개'];

const LEXICON_SIZE = 6000;
const PREFIX = DataRules.parse({}).input_prefix;
const MIN_INPUT = 500;
const MAX_INPUT = 999;

export interface SynthOptions {
  readonly trainOut: string;
  readonly evalOut: string;
  readonly train: number;
  readonly eval: number;
  readonly seed: number;
  readonly tokenizer: Tokenizer;
}

export interface SynthRow {
  readonly id: string;
  readonly title: string;
  readonly body: string;
  readonly keyphrases: string;
}

export interface SynthSummary {
  readonly train_out: string;
  readonly eval_out: string;
  readonly rows: { readonly train: number; readonly eval: number };
  /** Input tokens as counted while generating (prefix + title + body + eos; exact for bytes, see the top note for BPE). */
  readonly input_tokens: { readonly mean: number; readonly min: number; readonly max: number };
  readonly phrases_per_row: number;
  readonly seconds: number;
}

/** The seeded noun lexicon (2-4 syllables, a few acronyms) and Zipf weights over it. */
function buildLexicon(seed: number): { nouns: string[]; cumulative: Float64Array } {
  const rng = rngStream(seed, DataRng.synth, 0);
  const seen = new Set<string>();
  const nouns: string[] = [];
  while (nouns.length < LEXICON_SIZE) {
    const r = rng.uniform();
    const syllables = r < 0.45 ? 2 : r < 0.85 ? 3 : 4;
    let w = '';
    for (let k = 0; k < syllables; k++) w += SYLLABLES[randomBelow(rng, SYLLABLES.length)];
    if (rng.uniform() < 0.01) w = ACRONYMS[randomBelow(rng, ACRONYMS.length)]! + w;
    if (seen.has(w)) continue;
    seen.add(w);
    nouns.push(w);
  }
  // Zipf (s = 1): word frequency falls with rank, as in real text.
  const cumulative = new Float64Array(LEXICON_SIZE);
  let total = 0;
  for (let i = 0; i < LEXICON_SIZE; i++) cumulative[i] = total += 1 / (i + 1);
  for (let i = 0; i < LEXICON_SIZE; i++) cumulative[i]! /= total;
  return { nouns, cumulative };
}

class RowMaker {
  private readonly tokenCache = new Map<string, number>();
  private readonly nouns: string[];
  private readonly cumulative: Float64Array;
  private readonly fillerTokens: number;

  constructor(
    private readonly tokenizer: Tokenizer,
    seed: number,
  ) {
    ({ nouns: this.nouns, cumulative: this.cumulative } = buildLexicon(seed));
    this.fillerTokens = this.tokens('등');
  }

  /** Tokens of a word as it appears after a space. */
  private tokens(word: string): number {
    let n = this.tokenCache.get(word);
    if (n === undefined) {
      n = this.tokenizer.encode(` ${word}`).length;
      this.tokenCache.set(word, n);
    }
    return n;
  }

  private noun(rng: RngStream): string {
    const u = rng.uniform();
    let lo = 0;
    let hi = LEXICON_SIZE - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.cumulative[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return this.nouns[lo]!;
  }

  /** Target input length in [500, 999], mean about 725: 500 + 500 * u^1.15, u the mean of 3 uniforms. */
  private targetLength(rng: RngStream): number {
    const u = (rng.uniform() + rng.uniform() + rng.uniform()) / 3;
    return Math.min(MAX_INPUT, MIN_INPUT + Math.floor(500 * u ** 1.15));
  }

  make(id: string, rng: RngStream): { row: SynthRow; inputTokens: number } {
    // This article's topic nouns: drawn uniformly from the lexicon (so mostly rare words, unlike the
    // Zipf background), reused often in its body; they are the keyphrase material.
    const topics: string[] = [];
    while (topics.length < 14) {
      const n = this.nouns[randomBelow(rng, LEXICON_SIZE)]!;
      if (!topics.includes(n)) topics.push(n);
    }
    const titleWords = 3 + randomBelow(rng, 4);
    const title = topics.slice(0, titleWords).join(' ');
    const target = this.targetLength(rng);
    let total = this.tokenizer.encode(PREFIX + title).length + 1; // + eos
    const words: string[] = [];
    const pickWord = (): string => {
      const r = rng.uniform();
      const noun = rng.uniform() < 0.35 ? topics[randomBelow(rng, topics.length)]! : this.noun(rng);
      if (r < 0.68) return noun + PARTICLES[randomBelow(rng, PARTICLES.length)];
      if (r < 0.78) return noun;
      if (r < 0.88) return `${1 + randomBelow(rng, 30)}${COUNTERS[randomBelow(rng, COUNTERS.length)]}`;
      return ADVERBS[randomBelow(rng, ADVERBS.length)]!;
    };
    let sentenceLeft = 4 + randomBelow(rng, 8);
    for (;;) {
      const w = sentenceLeft-- > 0 ? pickWord() : PREDICATES[randomBelow(rng, PREDICATES.length)]!;
      if (sentenceLeft < 0) sentenceLeft = 4 + randomBelow(rng, 8);
      const t = this.tokens(w);
      if (total + t > target) break;
      words.push(w);
      total += t;
    }
    // Top up with short filler words, staying within [500, 999].
    while (total + this.fillerTokens <= target || total < MIN_INPUT) {
      words.push('등');
      total += this.fillerTokens;
    }
    const body = words.join(' ');

    // About 10 keyphrases (95% exactly 10): topic nouns that occur in the text first (the team's
    // gold labels are 96% verbatim), then others if too few occur.
    const count = rng.uniform() < 0.95 ? 10 : 7 + randomBelow(rng, 3);
    const text = `${title} ${body}`;
    const present = topics.filter((p) => text.includes(p));
    const phrases = [...present, ...topics.filter((p) => !present.includes(p))].slice(0, count);
    return { row: { id, title, body, keyphrases: phrases.join('; ') }, inputTokens: total };
  }
}

async function writeRows(file: string, rows: number, make: (i: number) => { row: SynthRow; inputTokens: number }, stats: { sum: number; min: number; max: number; phrases: number }): Promise<void> {
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  const out = createWriteStream(tmp, { encoding: 'utf8' });
  try {
    for (let i = 0; i < rows; i++) {
      const { row, inputTokens } = make(i);
      stats.sum += inputTokens;
      stats.min = Math.min(stats.min, inputTokens);
      stats.max = Math.max(stats.max, inputTokens);
      stats.phrases += row.keyphrases.split('; ').length;
      if (!out.write(`${JSON.stringify(row)}\n`)) await once(out, 'drain');
    }
    out.end();
    await once(out, 'finish');
    renameSync(tmp, file);
  } catch (err) {
    out.destroy();
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Write the train and eval JSONL files (each appears whole, by rename). */
export async function writeSyntheticSet(opts: SynthOptions): Promise<SynthSummary> {
  const started = performance.now();
  const maker = new RowMaker(opts.tokenizer, opts.seed);
  const stats = { sum: 0, min: Infinity, max: 0, phrases: 0 };
  const splitKey = { train: 1, eval: 2 } as const;
  for (const [split, file, rows] of [['train', opts.trainOut, opts.train], ['eval', opts.evalOut, opts.eval]] as const) {
    await writeRows(file, rows, (i) => maker.make(`synth-${split}-${i}`, rngStream(opts.seed, DataRng.synth, splitKey[split], i)), stats);
  }
  const n = opts.train + opts.eval;
  return {
    train_out: opts.trainOut,
    eval_out: opts.evalOut,
    rows: { train: opts.train, eval: opts.eval },
    input_tokens: { mean: n ? Math.round((stats.sum / n) * 10) / 10 : 0, min: n ? stats.min : 0, max: stats.max },
    phrases_per_row: n ? Math.round((stats.phrases / n) * 100) / 100 : 0,
    seconds: Math.round((performance.now() - started) / 10) / 100,
  };
}

/** One synthetic row (tests). */
export function synthRow(tokenizer: Tokenizer, seed: number, index: number): { row: SynthRow; inputTokens: number } {
  return new RowMaker(tokenizer, seed).make(`synth-train-${index}`, rngStream(seed, DataRng.synth, 1, index));
}
