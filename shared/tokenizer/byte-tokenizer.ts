import { createHash } from 'node:crypto';
import type { DecodeOptions, Tokenizer } from './tokenizer.js';

// The embedded default tokenizer, ByT5-style: pad 0, eos 1, unk 2, UTF-8 byte b -> id b + 3,
// 259 ids in all (the built-in presets in shared/models/presets.ts use vocab_size 259).
//
// Why bytes: it needs no download and no file from outside the repo (the design requires the
// embedded default to run on a fresh clone), and every string, Korean included, round-trips
// exactly — there is no unknown token and no normalisation. The price is length: a Hangul syllable
// is 3 UTF-8 bytes, so sequences are about 4-5x longer than with a Korean BPE; fine for the small
// built-in models and the shipped sample set, not for pko-t5 (use its tokenizer.json for that).

const PAD_ID = 0;
const EOS_ID = 1;
const UNK_ID = 2;
const BYTE_OFFSET = 3;
const VOCAB_SIZE = 256 + BYTE_OFFSET;

// The definition is the constants above; hashing a description of them gives a stable fingerprint
// that changes only if the id layout ever does.
const DEFINITION = JSON.stringify({ kind: 'byte', pad: PAD_ID, eos: EOS_ID, unk: UNK_ID, byte_offset: BYTE_OFFSET, vocab_size: VOCAB_SIZE });

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: false });

export class ByteTokenizer implements Tokenizer {
  readonly kind = 'byte' as const;
  readonly vocabSize = VOCAB_SIZE;
  readonly padId = PAD_ID;
  readonly eosId = EOS_ID;
  readonly unkId = UNK_ID;
  readonly fingerprint = createHash('sha256').update(DEFINITION).digest('hex');

  encode(text: string): number[] {
    const bytes = encoder.encode(text);
    const ids = new Array<number>(bytes.length);
    for (let i = 0; i < bytes.length; i++) ids[i] = bytes[i]! + BYTE_OFFSET;
    return ids;
  }

  /**
   * Special ids are dropped when asked, otherwise written as ByT5 writes them (`<pad>`, `</s>`,
   * `<unk>`). Ids outside the vocabulary are an error: they mean a model or cache mismatch.
   * Byte runs that are not valid UTF-8 (a model may emit them) decode to U+FFFD, as ByT5 does.
   */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const skip = options.skipSpecialTokens ?? false;
    let out = '';
    const bytes: number[] = [];
    const flush = (): void => {
      if (bytes.length > 0) out += decoder.decode(Uint8Array.from(bytes));
      bytes.length = 0;
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= VOCAB_SIZE) {
        throw new RangeError(`byte tokenizer: id ${id} at position ${i} is outside 0..${VOCAB_SIZE - 1}`);
      }
      if (id >= BYTE_OFFSET) {
        bytes.push(id - BYTE_OFFSET);
        continue;
      }
      flush();
      if (!skip) out += id === PAD_ID ? '<pad>' : id === EOS_ID ? '</s>' : '<unk>';
    }
    flush();
    return out;
  }
}
