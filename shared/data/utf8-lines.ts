import { isUtf8 } from 'node:buffer';
import { createReadStream } from 'node:fs';

// Input text is UTF-8, checked line by line. A stream decoder with replacement (Node's 'utf8'
// encoding, TextDecoder's default) turns a bad byte into U+FFFD silently: the row is kept with
// corrupted tokens and the report says 0 bad lines. Here each physical line is checked with
// buffer.isUtf8 (a strict, native validator: overlong forms, surrogates and truncated sequences are
// invalid) before it is decoded, so a bad one is a bad line with its number.

export interface ByteLine {
  /** 1-based physical line number. */
  readonly line: number;
  /** The line's bytes, with its LF (and a CR before it) when it had one. */
  readonly bytes: Buffer;
}

/** Physical lines of a file as bytes, split at LF; the last one may lack it. */
export async function* byteLines(file: string): AsyncGenerator<ByteLine> {
  let rest: Buffer = Buffer.alloc(0);
  let line = 0;
  for await (const chunk of createReadStream(file)) {
    let buf: Buffer = rest.length > 0 ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
    for (let nl = buf.indexOf(0x0a); nl >= 0; nl = buf.indexOf(0x0a)) {
      yield { line: ++line, bytes: buf.subarray(0, nl + 1) };
      buf = buf.subarray(nl + 1);
    }
    // Copy the tail: a subarray would pin the whole chunk until the next line ends.
    rest = Buffer.from(buf);
  }
  if (rest.length > 0) yield { line: ++line, bytes: rest };
}

/** The line as text, or why it is not UTF-8 (naming the byte where it goes wrong). */
export function decodeUtf8Line(bytes: Buffer): { ok: true; text: string } | { ok: false; reason: string } {
  if (isUtf8(bytes)) return { ok: true, text: bytes.toString('utf8') };
  const lossy = bytes.toString('utf8');
  const at = lossy.indexOf('\uFFFD');
  const byte = at < 0 ? 0 : Buffer.byteLength(lossy.slice(0, at));
  const seen = bytes.subarray(byte, byte + 4).toString('hex').replace(/(..)/gu, '$1 ').trim();
  return { ok: false, reason: `not valid UTF-8 at byte ${byte + 1} of the line (bytes ${seen}); save the file as UTF-8` };
}
