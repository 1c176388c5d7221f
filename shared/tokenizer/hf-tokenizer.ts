import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Tokenizer as HfJsTokenizer } from '@huggingface/tokenizers';
import { z } from 'zod';
import { InputFileError } from '../errors.js';
import type { DecodeOptions, Tokenizer } from './tokenizer.js';

// A Hugging Face `tokenizer.json` run by @huggingface/tokenizers (pure JS, no native code).
// Special ids come from tokenizer_config.json / special_tokens_map.json beside the file when they
// exist (as `transformers` reads them), else from the usual token strings.

export interface HfDecodeOptions extends DecodeOptions {
  /**
   * HF's `clean_up_tokenization_spaces` (" ." -> "." and the like). Default: the value in
   * tokenizer_config.json, as `transformers` does; pass false for an exact round trip.
   */
  readonly cleanUpTokenizationSpaces?: boolean;
}

// A special token is written either as its string or as an AddedToken object.
const SpecialToken = z.union([z.string(), z.object({ content: z.string() }).loose()]);
const TokenizerConfig = z
  .object({
    pad_token: SpecialToken.nullish(),
    eos_token: SpecialToken.nullish(),
    unk_token: SpecialToken.nullish(),
    clean_up_tokenization_spaces: z.boolean().optional(),
    additional_special_tokens: z.array(SpecialToken).optional(),
  })
  .loose();
type TokenizerConfig = z.infer<typeof TokenizerConfig>;

const TokenizerJson = z
  .object({
    model: z.object({ type: z.string().optional(), unk_token: z.string().nullish() }).loose(),
    added_tokens: z
      .array(z.object({ id: z.number().int().nonnegative(), content: z.string(), special: z.boolean().optional() }).loose())
      .default([]),
  })
  .loose();

// Token strings tried, in order, when no config names the token (T5/sentencepiece, then GPT-style).
const FALLBACK_EOS = ['</s>', '<|endoftext|>', '<eos>', '[SEP]'];
const FALLBACK_PAD = ['<pad>', '[PAD]'];
const FALLBACK_UNK = ['<unk>', '[UNK]'];

/** unkId of a tokenizer that has no unknown token (byte-level BPE can encode any text). */
export const NO_UNK_ID = -1;

function tokenText(t: z.infer<typeof SpecialToken> | null | undefined): string | undefined {
  if (t === null || t === undefined) return undefined;
  return typeof t === 'string' ? t : t.content;
}

function readBytes(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new InputFileError(file, '', 'cannot read the file', { cause: err });
  }
}

function readJson(file: string, raw: Buffer = readBytes(file)): unknown {
  const text = raw.toString('utf8');
  try {
    return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    throw new InputFileError(file, '', `not valid JSON (${(err as Error).message})`, { cause: err });
  }
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown, file: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  throw new InputFileError(file, '', `field ${issue.path.join('.') || '(root)'}: ${issue.message}`);
}

/**
 * The companion files of `tokenizer.json`: `tokenizer_config.json` and `special_tokens_map.json`
 * in the same folder. A saved file with a prefix (`foo-tokenizer.json`) takes companions with the
 * same prefix (`foo-tokenizer_config.json`).
 */
function companion(tokenizerFile: string, name: string): string | undefined {
  const base = basename(tokenizerFile);
  const prefix = base.endsWith('tokenizer.json') ? base.slice(0, -'tokenizer.json'.length) : '';
  const file = join(dirname(tokenizerFile), prefix + name);
  return existsSync(file) ? file : undefined;
}

export class HfTokenizer implements Tokenizer {
  readonly kind = 'hf' as const;
  readonly vocabSize: number;
  readonly padId: number;
  readonly eosId: number;
  readonly unkId: number;
  readonly fingerprint: string;
  private readonly specialIds: ReadonlySet<number>;

  private constructor(
    readonly file: string,
    private readonly inner: HfJsTokenizer,
    ids: { pad: number; eos: number; unk: number },
    fingerprint: string,
  ) {
    this.padId = ids.pad;
    this.eosId = ids.eos;
    this.unkId = ids.unk;
    this.fingerprint = fingerprint;
    let maxId = -1;
    for (const id of inner.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    const special = new Set<number>();
    for (const [id, token] of inner.get_added_tokens_decoder()) if (token.special) special.add(id);
    for (const id of [ids.pad, ids.eos, ids.unk]) if (id >= 0) special.add(id);
    this.specialIds = special;
  }

  /** Load `tokenizer.json` (and its companions, see `companion`). */
  static fromFile(file: string): HfTokenizer {
    const raw = readBytes(file);
    const json = readJson(file, raw);
    const parsed = parseWith(TokenizerJson, json, file);
    const configFile = companion(file, 'tokenizer_config.json');
    const mapFile = companion(file, 'special_tokens_map.json');
    const config: TokenizerConfig = configFile ? parseWith(TokenizerConfig, readJson(configFile), configFile) : {};
    const map: TokenizerConfig = mapFile ? parseWith(TokenizerConfig, readJson(mapFile), mapFile) : {};
    // tokenizer_config.json wins over special_tokens_map.json, as in `transformers`.
    const merged: TokenizerConfig = { ...map, ...config };
    for (const key of ['pad_token', 'eos_token', 'unk_token'] as const) merged[key] = config[key] ?? map[key];

    let inner: HfJsTokenizer;
    try {
      // The library reads only plain strings from the config's special-token entries.
      inner = new HfJsTokenizer(json as object, {
        ...merged,
        additional_special_tokens: (merged.additional_special_tokens ?? []).map(tokenText),
      });
    } catch (err) {
      throw new InputFileError(file, '', `@huggingface/tokenizers cannot load it: ${(err as Error).message}`, { cause: err });
    }

    const idOf = (token: string | undefined): number | undefined => (token === undefined ? undefined : inner.token_to_id(token));
    const find = (field: string, named: string | undefined, fallbacks: readonly string[]): number | undefined => {
      if (named !== undefined) {
        const id = idOf(named);
        if (id === undefined) {
          throw new InputFileError(configFile ?? mapFile ?? file, '', `field ${field}: token ${JSON.stringify(named)} is not in ${file}`);
        }
        return id;
      }
      for (const t of fallbacks) {
        const id = idOf(t);
        if (id !== undefined) return id;
      }
      return undefined;
    };
    const eos = find('eos_token', tokenText(merged.eos_token), FALLBACK_EOS);
    if (eos === undefined) {
      throw new InputFileError(file, '', `no eos token: tokenizer_config.json names none and none of ${FALLBACK_EOS.join(', ')} is in the vocabulary`);
    }
    // Without a pad token, pad with eos (what GPT-style setups do); padding is masked out anyway.
    const pad = find('pad_token', tokenText(merged.pad_token), FALLBACK_PAD) ?? eos;
    const unk = find('unk_token', tokenText(merged.unk_token) ?? parsed.model.unk_token ?? undefined, FALLBACK_UNK) ?? NO_UNK_ID;

    // The definition: the tokenizer.json bytes plus the special ids chosen from its companions.
    const fingerprint = createHash('sha256')
      .update(raw)
      .update(JSON.stringify({ pad, eos, unk, clean_up: merged.clean_up_tokenization_spaces ?? null }))
      .digest('hex');
    return new HfTokenizer(file, inner, { pad, eos, unk }, fingerprint);
  }

  encode(text: string): number[] {
    return this.inner.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: ArrayLike<number>, options: HfDecodeOptions = {}): string {
    const list: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`${this.file}: id ${id} at position ${i} is outside 0..${this.vocabSize - 1}`);
      }
      if (options.skipSpecialTokens && this.specialIds.has(id)) continue;
      list.push(id);
    }
    if (list.length === 0) return '';
    const opts: { skip_special_tokens: boolean; clean_up_tokenization_spaces?: boolean } = { skip_special_tokens: false };
    if (options.cleanUpTokenizationSpaces !== undefined) opts.clean_up_tokenization_spaces = options.cleanUpTokenizationSpaces;
    return this.inner.decode(list, opts);
  }
}
