import type { ReadItem } from './source-record.js';
import { byteLines, decodeUtf8Line } from './utf8-lines.js';

/**
 * Records of a JSON Lines file, one object per line. A UTF-8 BOM is dropped, CRLF ends a line like
 * LF, blank lines are skipped; a line that is not UTF-8, not JSON, or not a JSON object, is a bad line.
 */
export async function* readJsonl(file: string): AsyncGenerator<ReadItem> {
  for await (const { line, bytes } of byteLines(file)) {
    const decoded = decodeUtf8Line(bytes);
    if (!decoded.ok) {
      yield { ok: false, bad: { file, line, reason: decoded.reason } };
      continue;
    }
    let text = decoded.text.replace(/\r?\n$/u, '');
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      yield { ok: false, bad: { file, line, reason: `not valid JSON (${(err as Error).message})` } };
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      yield { ok: false, bad: { file, line, reason: `expected a JSON object, got ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}` } };
      continue;
    }
    yield { ok: true, record: { file, line, fields: value as Record<string, unknown> } };
  }
}
