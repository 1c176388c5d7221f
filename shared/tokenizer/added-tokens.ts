import { createHash } from 'node:crypto';
import { KpCoordError } from '../errors.js';
import type { DecodeOptions, Tokenizer } from './tokenizer.js';

// A tokenizer with new whole-string tokens, as HF `tokenizer.add_tokens([...])` followed by
// `model.resize_token_embeddings(len(tokenizer))`: the k-th new token gets id base.vocabSize + k
// (appended after the vocabulary), and encoding first cuts the text at every occurrence of a new
// token (leftmost, longest first) and runs the base tokenizer on the pieces between them — HF's
// added-token split, which happens before normalisation-free BPE/bytes. Like `add_tokens`'s
// defaults (lstrip/rstrip false, not special), spaces around a new token stay in the neighbouring
// pieces and decoding always writes the token's text. Works over any Tokenizer (bytes or HF);
// initialising the new embedding rows is the model side's job.

export interface AddedToken {
  readonly content: string;
  readonly id: number;
}

export class AddedTokensTokenizer implements Tokenizer {
  readonly kind: Tokenizer['kind'];
  readonly vocabSize: number;
  readonly padId: number;
  readonly eosId: number;
  readonly unkId: number;
  readonly fingerprint: string;
  readonly added: readonly AddedToken[];
  /** Longest first, so a token that is the start of another never cuts it. */
  private readonly byLength: readonly AddedToken[];

  constructor(
    readonly base: Tokenizer,
    tokens: readonly string[],
  ) {
    const seen = new Set<string>();
    for (const t of tokens) {
      if (t === '') throw new KpCoordError('added tokens: an added token must not be empty');
      if (seen.has(t)) throw new KpCoordError(`added tokens: ${JSON.stringify(t)} is given twice`);
      seen.add(t);
      // HF does not add a string that is already a token; here that would silently change nothing.
      if (base.encode(t).length === 1) throw new KpCoordError(`added tokens: ${JSON.stringify(t)} is already one token of the tokenizer; use the prefixes as text`);
    }
    this.kind = base.kind;
    this.padId = base.padId;
    this.eosId = base.eosId;
    this.unkId = base.unkId;
    this.added = Object.freeze(tokens.map((content, k) => Object.freeze({ content, id: base.vocabSize + k })));
    this.vocabSize = base.vocabSize + tokens.length;
    this.byLength = [...this.added].sort((a, b) => b.content.length - a.content.length);
    this.fingerprint = createHash('sha256').update(base.fingerprint).update(JSON.stringify({ added_tokens: tokens })).digest('hex');
  }

  encode(text: string): number[] {
    const out: number[] = [];
    let from = 0;
    while (from < text.length) {
      let at = -1;
      let hit: AddedToken | undefined;
      for (const t of this.byLength) {
        const i = text.indexOf(t.content, from);
        if (i >= 0 && (at < 0 || i < at)) {
          at = i;
          hit = t;
        }
      }
      if (hit === undefined) break;
      if (at > from) out.push(...this.base.encode(text.slice(from, at)));
      out.push(hit.id);
      from = at + hit.content.length;
    }
    if (from < text.length) out.push(...this.base.encode(text.slice(from)));
    return out;
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    let out = '';
    let run: number[] = [];
    const flush = (): void => {
      if (run.length > 0) out += this.base.decode(run, options);
      run = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const k = id - this.base.vocabSize;
      if (Number.isInteger(k) && k >= 0 && k < this.added.length) {
        flush();
        out += this.added[k]!.content;
      } else {
        run.push(id);
      }
    }
    flush();
    return out;
  }
}

/** `base` with `tokens` added after its vocabulary (HF add_tokens); `base` itself when there are none. */
export function withAddedTokens(base: Tokenizer, tokens: readonly string[]): Tokenizer {
  return tokens.length === 0 ? base : new AddedTokensTokenizer(base, tokens);
}
