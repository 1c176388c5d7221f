import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { loadRunConfig } from '../../../shared/config/resolve-run-config.js';
import { InputFileError, KpCoordError } from '../../../shared/errors.js';
import { REPO_ROOT, fixture, scratchDir } from './helpers.js';

// Seeded property-based tests (fast-check) over what users feed kp-coord: `data prepare` inputs as
// bytes — valid rows mixed with garbage, invalid UTF-8, UTF-16 and EUC-KR-like bytes, CRLF,
// truncated anywhere — in JSONL, CSV and Parquet; and run configs mutated the same ways. Properties:
// never a crash or a stack trace; a failure exits 1 (usage 2) naming the file (and line and field
// where there is one); nothing is left half-written. The seed is printed; KP_FUZZ_SEED replays it.

const seed = Number(process.env.KP_FUZZ_SEED ?? Date.now() % 1_000_000);
const runs = Number(process.env.KP_FUZZ_RUNS ?? 16);
const MAIN = join(REPO_ROOT, 'dist', 'coordinator', 'cli', 'main.js');

const hangul = fc.string({ unit: fc.integer({ min: 0xac00, max: 0xd7a3 }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 30 });
const row = fc.record({ title: hangul, body: hangul.map((s) => s.repeat(8)), keyphrases: fc.array(hangul, { minLength: 1, maxLength: 4 }) });
/** Bytes that are not UTF-8 text: random bytes, a lone continuation byte, a cut Hangul sequence, UTF-16LE, EUC-KR-like pairs. */
const foreign = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => Buffer.from(b)),
  fc.constantFrom(Buffer.from([0x80]), Buffer.from([0xea, 0xb0]), Buffer.from([0xc0, 0xaf]), Buffer.from([0xed, 0xa0, 0x80])),
  hangul.map((s) => Buffer.from(s, 'utf16le')),
  fc.array(fc.tuple(fc.integer({ min: 0xb0, max: 0xc8 }), fc.integer({ min: 0xa1, max: 0xfe })), { minLength: 1, maxLength: 8 }).map((ps) => Buffer.from(ps.flat())),
);

const jsonlLine = fc.oneof(
  { weight: 4, arbitrary: row.map((r) => Buffer.from(JSON.stringify(r))) },
  { weight: 1, arbitrary: row.chain((r) => foreign.map((f) => Buffer.concat([Buffer.from(JSON.stringify(r).slice(0, 12)), f, Buffer.from('"}')]))) },
  { weight: 1, arbitrary: foreign },
  { weight: 1, arbitrary: fc.constantFrom(Buffer.from(''), Buffer.from('[1,2]'), Buffer.from('{"title": null}'), Buffer.from('{"title":"t","body":"b","keyphrases":"x"')) },
);
const csvField = (s: string) => `"${s.replaceAll('"', '""')}"`;
const csvLine = fc.oneof(
  { weight: 4, arbitrary: row.map((r) => Buffer.from(`${csvField(r.title)},${csvField(r.body)},${csvField(r.keyphrases.join('; '))}`)) },
  { weight: 1, arbitrary: foreign },
  { weight: 1, arbitrary: fc.constantFrom(Buffer.from('"open,quote'), Buffer.from('a,b'), Buffer.from('x"y,z,w')) },
);
const PARQUETS = ['title-body-snappy.parquet', 'title-content-gzip.parquet', 'title-content-uncompressed.parquet', 'bad-rows-snappy.parquet', 'ready-made-brotli.parquet'];

/** One input file: format, bytes (maybe truncated or with bytes flipped). */
const input = fc.oneof(
  fc.record({ ext: fc.constant('jsonl'), lines: fc.array(jsonlLine, { minLength: 0, maxLength: 12 }), crlf: fc.boolean(), cut: fc.option(fc.nat()) }).map(({ ext, lines, crlf, cut }) => {
    const bytes = Buffer.concat(lines.flatMap((l) => [l, Buffer.from(crlf ? '\r\n' : '\n')]));
    return { ext, bytes: cut === null ? bytes : bytes.subarray(0, cut % (bytes.length + 1)) };
  }),
  fc.record({ ext: fc.constant('csv'), lines: fc.array(csvLine, { minLength: 0, maxLength: 12 }), cut: fc.option(fc.nat()) }).map(({ ext, lines, cut }) => {
    const bytes = Buffer.concat([Buffer.from('title,body,keyphrases\n'), ...lines.flatMap((l) => [l, Buffer.from('\n')])]);
    return { ext, bytes: cut === null ? bytes : bytes.subarray(0, cut % (bytes.length + 1)) };
  }),
  fc.record({ ext: fc.constant('parquet'), file: fc.constantFrom(...PARQUETS), cut: fc.option(fc.nat()), flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }) }).map(({ ext, file, cut, flips }) => {
    const bytes = Buffer.from(readFileSync(fixture(file)));
    for (const [at, x] of flips) bytes[at % bytes.length]! ^= x;
    return { ext, bytes: cut === null ? bytes : bytes.subarray(0, cut % (bytes.length + 1)) };
  }),
);

async function prepare(file: string, out: string, skipBad: number): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, 'data', 'prepare', '--input', file, '--out', out, '--min-input-tokens', 'none', '--skip-bad', String(skipBad)], {
    env: { ...process.env, KPCOORD_LOG_LEVEL: 'error' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code, signal] = (await once(child, 'close')) as [number | null, string | null];
  clearTimeout(timer);
  return { code, signal, stderr };
}

test(`fuzz: data prepare on mutated JSONL/CSV/Parquet bytes never crashes, names the file, leaves nothing half-written (seed ${seed})`, { timeout: 600_000 }, async (t) => {
  console.log(`data prepare fuzz seed ${seed} (KP_FUZZ_SEED=${seed} replays it), ${runs} runs`);
  const dir = scratchDir(t);
  let n = 0;
  await withCause(fc.assert(
    fc.asyncProperty(input, fc.constantFrom(0, 0, 2), async ({ ext, bytes }, skipBad) => {
      const work = join(dir, `case-${n++}`);
      rmSync(work, { recursive: true, force: true });
      const { mkdirSync } = await import('node:fs');
      mkdirSync(work);
      const file = join(work, `input.${ext}`);
      writeFileSync(file, bytes);
      const out = join(work, 'cache');
      const r = await prepare(file, out, skipBad);
      assert.equal(r.signal, null, `killed (hung?):\n${r.stderr}`);
      assert.ok(r.code === 0 || r.code === 1, `exit ${r.code}:\n${r.stderr}`);
      assert.doesNotMatch(r.stderr, /unexpected error|\n\s+at [\w.<]+ \(|\bat file:\/\//u, 'a stack trace');
      const leftovers = readdirSync(work).filter((f) => f !== `input.${ext}` && f !== 'cache');
      assert.deepEqual(leftovers, [], 'a staging folder left behind');
      if (r.code === 0) {
        assert.ok(existsSync(join(out, 'manifest.json')), 'exit 0 without a cache');
      } else {
        assert.ok(!existsSync(out), 'a failed prepare left its output');
        // The message names the input (with line/row and field when one is at fault).
        assert.match(r.stderr, /^kp-coord: .*input\.(jsonl|csv|parquet)\b/mu, r.stderr);
      }
    }),
    { seed, numRuns: runs },
  ));
});

test(`fuzz: mutated run configs are accepted or refused with an InputFileError naming the file (seed ${seed})`, (t) => {
  const dir = scratchDir(t);
  const base = readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'config', 'hf-trainer-style.yaml'));
  const mutation = fc.oneof(
    fc.nat().map((cut) => (b: Buffer) => b.subarray(0, cut % (b.length + 1))),
    fc.tuple(fc.nat(), foreign).map(([at, f]) => (b: Buffer) => Buffer.concat([b.subarray(0, at % (b.length + 1)), f, b.subarray(at % (b.length + 1))])),
    fc.tuple(fc.nat(), fc.string({ maxLength: 12 })).map(([line, junk]) => (b: Buffer) => {
      // latin1 keeps every byte as it is (earlier mutations may have made it invalid UTF-8).
      const lines = b.toString('latin1').split('\n');
      const i = line % lines.length;
      lines[i] = lines[i]!.includes(':') ? `${lines[i]!.split(':')[0]}: ${Buffer.from(junk).toString('latin1')}` : Buffer.from(junk).toString('latin1');
      return Buffer.from(lines.join('\n'), 'latin1');
    }),
    fc.nat().map((line) => (b: Buffer) => {
      const lines = b.toString('latin1').split('\n');
      return Buffer.from([...lines, lines[line % lines.length]!].join('\n'), 'latin1');
    }),
  );
  let n = 0;
  void withCause(() => fc.assert(
    fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), fc.constantFrom('yaml', 'json'), (mutations, ext) => {
      const file = join(dir, `run-${n++}.${ext}`);
      let bytes: Buffer = ext === 'yaml' ? base : Buffer.from(JSON.stringify(Object.fromEntries(base.toString('utf8').split('\n').filter((l) => /^[a-z_]+: [^ #]+$/u.test(l)).map((l) => l.split(': ') as [string, string]))));
      for (const m of mutations) bytes = m(bytes);
      writeFileSync(file, bytes);
      try {
        loadRunConfig(file, { baseDir: REPO_ROOT });
      } catch (e) {
        assert.ok(e instanceof InputFileError || e instanceof KpCoordError, `not a named error: ${(e as Error).stack}`);
        assert.ok((e as Error).message.startsWith(file), `does not name the file: ${(e as Error).message}`);
        assert.ok(!(e as Error).message.includes('\uFFFD'), `U+FFFD in the message: ${(e as Error).message}`);
      }
    }),
    { seed, numRuns: runs * 10 },
  ));
});

/** fast-check keeps the failing assertion in `cause`, which the test runner does not print: add it to the message. */
function withCause(run: Promise<void> | (() => void)): Promise<void> {
  const add = (e: unknown): never => {
    const cause = (e as { cause?: unknown }).cause;
    if (e instanceof Error && cause instanceof Error) e.message += `\n${cause.message}`;
    throw e;
  };
  if (typeof run === 'function') {
    try {
      run();
    } catch (e) {
      add(e);
    }
    return Promise.resolve();
  }
  return run.catch(add);
}
