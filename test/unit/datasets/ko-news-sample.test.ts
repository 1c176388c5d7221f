import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

// The sample dataset that ships in the repo (shared/datasets/ko-news-sample.jsonl) is what the
// embedded default run trains on, so its format and the statistics its README states are checked
// here. Lengths are in Unicode code points, spaces and punctuation included.

const SAMPLE_PATH = 'shared/datasets/ko-news-sample.jsonl';
const BODY_CHARS = { min: 250, max: 600 };
const TITLE_CHARS = { min: 10, max: 40 };
const KEYPHRASE_CHARS = { min: 2, max: 15 };
const KEYPHRASES_PER_ROW = { min: 5, max: 10 };
const KEYPHRASE_SEPARATOR = '; ';
/** The team's V3/V4 gold labels are 96% verbatim; the sample must stay label-like. */
const MIN_VERBATIM_SHARE = 0.85;
/** Rows with a Latin-letter term (AI, ESG, K-pop, CCTV, ...), so normalisation gets exercised. */
const MIN_LATIN_ROWS = 5;

/** The exact figures shared/datasets/README.md states; change both together. */
const README_STATS = { rows: 110, bodyChars: 33342, minBody: 275, maxBody: 358, keyphrases: 1083, verbatim: 1025 };

const chars = (s: string): number => [...s].length;

const KeyphraseList = z
  .string()
  .transform((s) => s.split(KEYPHRASE_SEPARATOR))
  .superRefine((phrases, ctx) => {
    if (phrases.length < KEYPHRASES_PER_ROW.min || phrases.length > KEYPHRASES_PER_ROW.max) {
      ctx.addIssue({ code: 'custom', message: `${phrases.length} keyphrases, expected ${KEYPHRASES_PER_ROW.min}-${KEYPHRASES_PER_ROW.max}` });
    }
    const seen = new Set<string>();
    for (const p of phrases) {
      if (p !== p.trim() || p.includes(';')) ctx.addIssue({ code: 'custom', message: `keyphrase ${JSON.stringify(p)} has stray spaces or ';'` });
      if (chars(p) < KEYPHRASE_CHARS.min || chars(p) > KEYPHRASE_CHARS.max) {
        ctx.addIssue({ code: 'custom', message: `keyphrase ${JSON.stringify(p)} is ${chars(p)} chars, expected ${KEYPHRASE_CHARS.min}-${KEYPHRASE_CHARS.max}` });
      }
      if (seen.has(p)) ctx.addIssue({ code: 'custom', message: `duplicate keyphrase ${JSON.stringify(p)}` });
      seen.add(p);
    }
  });

const boundedText = (bounds: { min: number; max: number }) =>
  z.string().superRefine((s, ctx) => {
    if (s.normalize('NFC') !== s) ctx.addIssue({ code: 'custom', message: 'not in Unicode NFC' });
    if (/[\u0000-\u001f\u007f]/.test(s)) ctx.addIssue({ code: 'custom', message: 'contains a control character (tab, newline, ...)' });
    const n = chars(s);
    if (n < bounds.min || n > bounds.max) ctx.addIssue({ code: 'custom', message: `${n} chars, expected ${bounds.min}-${bounds.max}` });
  });

const SampleRow = z
  .object({
    id: z.string().regex(/^kns-\d{4}$/, 'expected kns-NNNN'),
    title: boundedText(TITLE_CHARS),
    body: boundedText(BODY_CHARS),
    keyphrases: KeyphraseList,
  })
  .strict();

type SampleRow = z.output<typeof SampleRow> & { readonly line: number };

function samplePath(): string {
  // dist/test/unit/datasets -> repo root; the .jsonl is read from the source tree, not dist.
  const here = dirname(fileURLToPath(import.meta.url));
  return resolve(here, '..', '..', '..', '..', SAMPLE_PATH);
}

/** Every line parsed and validated; problems as "file:line: field: message". */
function loadSample(): { rows: SampleRow[]; problems: string[]; text: string } {
  const text = readFileSync(samplePath(), 'utf8');
  const rows: SampleRow[] = [];
  const problems: string[] = [];
  const lines = text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n');
  lines.forEach((line, i) => {
    const where = `${SAMPLE_PATH}:${i + 1}`;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (err) {
      problems.push(`${where}: not valid JSON (${(err as Error).message})`);
      return;
    }
    const parsed = SampleRow.safeParse(json);
    if (parsed.success) rows.push({ ...parsed.data, line: i + 1 });
    else for (const issue of parsed.error.issues) problems.push(`${where}: ${issue.path.join('.') || '(row)'}: ${issue.message}`);
  });
  return { rows, problems, text };
}

const sample = loadSample();

const isVerbatim = (row: SampleRow, phrase: string): boolean => `${row.title}\n${row.body}`.includes(phrase);

test('the file is UTF-8 JSON Lines without BOM or CR, ending in one LF', () => {
  assert.notEqual(sample.text.charCodeAt(0), 0xfeff, 'starts with a BOM');
  assert.ok(!sample.text.includes('\r'), 'contains CR');
  assert.ok(sample.text.endsWith('\n') && !sample.text.endsWith('\n\n'), 'must end in exactly one LF');
  assert.ok(!Buffer.from(sample.text, 'utf8').includes(Buffer.from('\ufffd', 'utf8')), 'contains U+FFFD (bad UTF-8)');
});

test('every line parses and validates against the row schema', () => {
  assert.deepEqual(sample.problems, []);
  assert.equal(sample.rows.length, README_STATS.rows);
});

test('ids number the lines (kns-0001 on line 1, ...), titles are unique', () => {
  const misnumbered = sample.rows.filter((r) => r.id !== `kns-${String(r.line).padStart(4, '0')}`);
  assert.deepEqual(misnumbered.map((r) => `${SAMPLE_PATH}:${r.line}: id ${r.id}`), []);
  const titles = sample.rows.map((r) => r.title);
  assert.deepEqual(titles.filter((t, i) => titles.indexOf(t) !== i), []);
});

test(`at least ${MIN_VERBATIM_SHARE * 100}% of keyphrases occur verbatim in title + body`, () => {
  const all = sample.rows.flatMap((row) => row.keyphrases.map((p) => ({ row, p })));
  const verbatim = all.filter(({ row, p }) => isVerbatim(row, p)).length;
  assert.ok(verbatim / all.length >= MIN_VERBATIM_SHARE, `${verbatim} of ${all.length} verbatim`);
  // Most, not all: some labels are abstractive, as in the team's data.
  assert.ok(verbatim < all.length, 'expected a few abstractive keyphrases');
});

test(`at least ${MIN_LATIN_ROWS} rows carry a Latin-letter term`, () => {
  const latin = sample.rows.filter((r) => /[A-Za-z]/.test(`${r.title} ${r.body}`) && r.keyphrases.some((p) => /[A-Za-z]/.test(p)));
  assert.ok(latin.length >= MIN_LATIN_ROWS, `${latin.length} rows`);
});

test('the statistics stated in shared/datasets/README.md are the measured ones', () => {
  const bodies = sample.rows.map((r) => chars(r.body));
  const phrases = sample.rows.flatMap((row) => row.keyphrases.map((p) => ({ row, p })));
  assert.deepEqual(
    {
      rows: sample.rows.length,
      bodyChars: bodies.reduce((a, b) => a + b, 0),
      minBody: Math.min(...bodies),
      maxBody: Math.max(...bodies),
      keyphrases: phrases.length,
      verbatim: phrases.filter(({ row, p }) => isVerbatim(row, p)).length,
    },
    README_STATS,
  );
});
