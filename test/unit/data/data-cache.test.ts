import assert from 'node:assert/strict';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { openDataCache } from '../../../shared/data/data-cache.js';
import { prepareData } from '../../../shared/data/prepare.js';
import { InputFileError } from '../../../shared/errors.js';
import { ByteTokenizer } from '../../../shared/tokenizer/byte-tokenizer.js';
import type { Tokenizer } from '../../../shared/tokenizer/tokenizer.js';
import { fixture, openRules, scratchDir } from './helpers.js';

const bytes = new ByteTokenizer();

async function build(dir: string, tokenizer: Tokenizer = bytes): Promise<string> {
  const out = join(dir, 'cache');
  await prepareData({ inputs: [fixture('rules-rows.jsonl')], evalFiles: [fixture('rows-bom-crlf.csv')], tokenizer, tokenizerSpec: 'test', rules: openRules(), outDir: out });
  return out;
}

test('round trip: ids are the tokenizer ids + eos, lengths match, views share one buffer', async (t) => {
  const out = await build(scratchDir(t));
  const cache = openDataCache(out, { verifyChecksums: true, tokenizerFingerprint: bytes.fingerprint });
  assert.equal(cache.manifest.token_dtype, 'uint16');
  const tr = cache.train;
  const input = 'generate keyphrases: 줄바꿈이 있는 제목 첫 문단이다. 둘째 문단이다. 셋째 문단이다.';
  assert.deepEqual([...tr.inputIds(1)], [...bytes.encode(input), bytes.eosId]);
  assert.deepEqual([...tr.labelIds(1)], [...bytes.encode('문단; 줄바꿈'), bytes.eosId]);
  assert.equal(tr.inputLength(1), tr.inputIds(1).length);
  assert.equal(tr.labelLength(1), tr.labelIds(1).length);
  assert.equal(tr.inputIds(0).buffer, tr.inputIds(4).buffer, 'no copy per sample');
  assert.ok(tr.inputIds(0) instanceof Uint16Array);
  assert.equal(cache.eval!.size, 3);
  assert.equal(cache.manifest.splits.train.input_tokens, Array.from({ length: tr.size }, (_, i) => tr.inputLength(i)).reduce((a, b) => a + b, 0));
  assert.throws(() => tr.inputIds(5), /sample 5 is outside 0\.\.4/u);
  assert.equal(cache.manifest.sources.length, 2);
  assert.match(cache.manifest.sources[0]!.sha256, /^[0-9a-f]{64}$/u);
});

test('a vocabulary over 65,536 ids is stored as int32', async (t) => {
  // A stand-in tokenizer: one id per code point, shifted past the uint16 range.
  const wide: Tokenizer = {
    kind: 'hf',
    vocabSize: 0x110000 + 70000,
    padId: 0,
    eosId: 1,
    unkId: 2,
    fingerprint: 'a'.repeat(64),
    encode: (s) => Array.from(s, (c) => c.codePointAt(0)! + 70000),
    decode: (ids) => String.fromCodePoint(...Array.from(ids, (i) => i - 70000)),
  };
  const cache = openDataCache(await build(scratchDir(t), wide));
  assert.equal(cache.manifest.token_dtype, 'int32');
  const ids = cache.train.labelIds(1);
  assert.ok(ids instanceof Int32Array);
  assert.equal(wide.decode(ids.subarray(0, -1)), '문단; 줄바꿈');
  assert.ok(ids[0]! > 65535);
});

test('damage is found: wrong sizes, bad manifest fields, checksums, another tokenizer', async (t) => {
  const out = await build(scratchDir(t));
  const manifestFile = join(out, 'manifest.json');
  const manifest = readFileSync(manifestFile, 'utf8');
  assert.throws(
    () => openDataCache(out, { tokenizerFingerprint: 'b'.repeat(64) }),
    /tokenizer\.fingerprint: the cache was made with tokenizer test .* prepare the data again/u,
  );
  writeFileSync(manifestFile, manifest.replace(/"format_version": \d+/u, '"format_version": 9'));
  assert.throws(() => openDataCache(out), (e: unknown) => e instanceof InputFileError && /format_version/u.test(e.message));
  writeFileSync(manifestFile, manifest.replace('"token_dtype": "uint16"', '"token_dtype": "int8"'));
  assert.throws(() => openDataCache(out), /token_dtype/u);
  writeFileSync(manifestFile, manifest);
  // Same size, one byte changed: only the checksum sees it.
  const labels = join(out, 'train.labels.bin');
  const b = readFileSync(labels);
  b[0] ^= 1;
  writeFileSync(labels, b);
  openDataCache(out);
  assert.throws(() => openDataCache(out, { verifyChecksums: true }), /train\.labels\.bin: sha256 .* differs/u);
  truncateSync(labels, b.length - 2);
  assert.throws(() => openDataCache(out), /train\.labels\.bin: is \d+ bytes, the manifest says \d+: the cache is damaged/u);
  assert.throws(() => openDataCache(join(out, 'nope')), /cannot read the data cache manifest/u);
});
