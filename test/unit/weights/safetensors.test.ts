import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { InputFileError } from '../../../shared/errors.js';
import { readSafetensors, SafetensorsFile, writeSafetensors } from '../../../shared/weights/safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'kp-safetensors-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const freshPath = (name = 'x'): string => join(dir, `${name}-${counter++}.safetensors`);

/** A file assembled by hand: 8-byte length (real or forced), header as given (bytes, text or JSON), data. */
function handMade(header: unknown, data: Uint8Array = new Uint8Array(0), forcedLength?: bigint): string {
  const text = header instanceof Uint8Array ? header : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(forcedLength ?? BigInt(text.length));
  const path = freshPath('hand');
  writeFileSync(path, Buffer.concat([length, text, data]));
  return path;
}

const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const bitsOf = (a: Float32Array): number[] => [...new Uint32Array(a.buffer, a.byteOffset, a.length)];

test('F32, I32 and I64 tensors and metadata round-trip bit for bit', async () => {
  const special = new Float32Array(new Uint32Array([0x7fc12345, 0x80000000, 0x00000001, 0x7f800000, 0xff800000, 0x3f800000]).buffer);
  const big = new Float32Array(10_000).map((_, i) => Math.sin(i) * 1e3);
  const backing = new Float32Array(20);
  const view = backing.subarray(5, 11).fill(2.5); // a view into a larger buffer, as the flat layout passes
  const tensors = [
    { name: 'special', dtype: 'F32', shape: [2, 3], data: special },
    { name: 'big', dtype: 'F32', shape: [100, 100], data: big },
    { name: 'view', dtype: 'F32', shape: [6], data: view },
    { name: 'scalar', dtype: 'F32', shape: [], data: new Float32Array([-7.25]) },
    { name: 'empty', dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
    { name: 'step', dtype: 'I64', shape: [2], data: new BigInt64Array([123456789012345n, -5n]) },
    { name: 'counts', dtype: 'I32', shape: [3], data: new Int32Array([-1, 0, 2 ** 31 - 1]) },
  ] as const;
  const path = freshPath();
  await writeSafetensors(path, tensors, { format: 'pt', note: 'ünïcödé' });

  const raw = readFileSync(path);
  const n = Number(raw.readBigUInt64LE(0));
  assert.equal(n % 8, 0, 'header padded to 8 bytes');
  assert.equal(raw[8], '{'.charCodeAt(0));

  const read = await readSafetensors(path);
  assert.deepEqual(read.metadata, { format: 'pt', note: 'ünïcödé' });
  assert.deepEqual([...read.tensors.keys()], tensors.map((t) => t.name), 'header order kept');
  for (const t of tensors) {
    const got = read.tensors.get(t.name)!;
    assert.deepEqual(got.info.shape, t.shape);
    assert.equal(got.info.dtype, t.dtype);
    assert.deepEqual(bytesOf(got.data), bytesOf(t.data), t.name);
  }
  assert.deepEqual(bitsOf(read.tensors.get('special')!.data as Float32Array), [0x7fc12345, 0x80000000, 1, 0x7f800000, 0xff800000, 0x3f800000]);
});

test('the bytes match the reference writer for the same tensor (format test vectors)', async () => {
  // Expected bytes: the safetensors crate's own serialization tests (tensor.rs: forced alignment and empty).
  const path = freshPath();
  await writeSafetensors(path, [{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3], data: Float32Array.from([0, 1, 2, 3, 4, 5]) }]);
  const header = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
  const expected = Buffer.concat([
    Buffer.from([72, 0, 0, 0, 0, 0, 0, 0]),
    Buffer.from(header.padEnd(72, ' ')),
    Buffer.from(Float32Array.from([0, 1, 2, 3, 4, 5]).buffer),
  ]);
  assert.deepEqual(readFileSync(path), expected);

  const empty = freshPath();
  await writeSafetensors(empty, []);
  assert.deepEqual([...readFileSync(empty)], [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
  const withMeta = freshPath();
  await writeSafetensors(withMeta, [], { framework: 'pt' });
  assert.deepEqual(readFileSync(withMeta), Buffer.concat([Buffer.from([40, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{"__metadata__":{"framework":"pt"}}     ')]));
});

test('F16, BF16 and F64 tensors decode into float32; a multi-chunk BF16 tensor too', async () => {
  const f16 = Uint16Array.from([0x3c00, 0x0001, 0x8000, 0x7c00]);
  const bf16 = Uint16Array.from([0x3f80, 0x0001, 0xc000, 0xff80]);
  const f64 = Float64Array.from([1 / 3, -0, 1e300, 2 ** -149]);
  const longCount = 4_500_001; // 9 MB of BF16: crosses the 8 MiB scratch buffer
  const long = new Uint16Array(longCount).map((_, i) => (0x3f80 + (i % 128)) & 0xffff);
  const parts = [bytesOf(f16), bytesOf(bf16), bytesOf(f64), bytesOf(long)];
  let offset = 0;
  const entry = (dtype: string, shape: number[], bytes: number) => ({ dtype, shape, data_offsets: [offset, (offset += bytes)] });
  const header = {
    h: entry('F16', [4], 8),
    b: entry('BF16', [2, 2], 8),
    d: entry('F64', [4], 32),
    long: entry('BF16', [longCount], longCount * 2),
  };
  const path = handMade(header, Buffer.concat(parts));
  const file = await SafetensorsFile.open(path);
  try {
    assert.deepEqual([...(await file.readFloat32('h'))], [1, 2 ** -24, -0, Infinity]);
    assert.deepEqual([...(await file.readFloat32('b'))], [1, 2 ** -133, -2, -Infinity]);
    assert.deepEqual([...(await file.readFloat32('d'))], [Math.fround(1 / 3), -0, Infinity, 2 ** -149]);
    const got = await file.readFloat32('long');
    const want = new Uint32Array(longCount).map((_, i) => ((0x3f80 + (i % 128)) & 0xffff) << 16);
    assert.ok(bitsOf(got).every((b, i) => b === want[i]), 'every element of the long tensor');
  } finally {
    await file.close();
  }
});

test('the lazy reader reads only what is asked and checks the destination', async () => {
  const path = freshPath();
  await writeSafetensors(path, [
    { name: 'a', dtype: 'F32', shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) },
    { name: 'n', dtype: 'I64', shape: [1], data: new BigInt64Array([9n]) },
  ]);
  const file = await SafetensorsFile.open(path);
  try {
    assert.deepEqual(file.names(), ['a', 'n']);
    assert.equal(file.info('a').numel, 4);
    const flat = new Float32Array(10);
    await file.readInto('a', flat.subarray(3, 7)); // straight into a view of a larger buffer
    assert.deepEqual([...flat], [0, 0, 0, 1, 2, 3, 4, 0, 0, 0]);
    await assert.rejects(file.readInto('a', new Float32Array(5)), (e: unknown) => e instanceof InputFileError && /tensor 'a'.*4 elements.*holds 5/.test(e.message));
    await assert.rejects(file.readInto('n', new Float32Array(1)), (e: unknown) => e instanceof InputFileError && /tensor 'n'.*I64 is not a float/.test(e.message));
    assert.throws(() => file.info('zzz'), (e: unknown) => e instanceof InputFileError && e.message.includes(path) && e.message.includes("tensor 'zzz'"));
    assert.deepEqual([...(await file.readIntegers('n'))], [9n]);
    await assert.rejects(file.readIntegers('a'), /F32 is not I32 or I64/);
  } finally {
    await file.close();
  }
});

/** Opening `path` fails with an InputFileError that names the file and matches `pattern`. */
async function rejectsOpen(path: string, pattern: RegExp): Promise<void> {
  await assert.rejects(SafetensorsFile.open(path), (e: unknown) => {
    assert.ok(e instanceof InputFileError, `expected InputFileError, got ${String(e)}`);
    assert.ok(e.message.startsWith(path), `names the file: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
}

const f32Entry = (shape: number[], begin: number, end: number) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });

test('malformed files are rejected with the file, the tensor and the problem named', async () => {
  const four = new Uint8Array(16);
  // Structure of the file and header.
  await rejectsOpen(handMade(''), /header: is not valid JSON/);
  const tiny = freshPath('tiny');
  writeFileSync(tiny, Buffer.from([1, 2, 3]));
  await rejectsOpen(tiny, /3 bytes, too short for the 8-byte header length/);
  await rejectsOpen(handMade('{}', new Uint8Array(0), 1000n), /header length 1000 runs past the end of the file \(10 bytes\)/);
  await rejectsOpen(handMade('{}', new Uint8Array(0), 2n ** 63n), /header length 9223372036854775808 runs past the end/);
  await rejectsOpen(handMade(Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), /header: is not valid UTF-8/);
  await rejectsOpen(handMade('{"a": [1, 2'), /header: is not valid JSON/);
  await rejectsOpen(handMade('[1, 2]'), /header: must be a JSON object/);
  // Tensor entries.
  await rejectsOpen(handMade({ w: { dtype: 'F24', shape: [4], data_offsets: [0, 16] } }, four), /tensor 'w': unknown dtype 'F24'/);
  await rejectsOpen(handMade({ w: { dtype: 'F32', shape: [-4], data_offsets: [0, 16] } }, four), /tensor 'w': invalid header entry: shape\.0/);
  await rejectsOpen(handMade({ w: { dtype: 'F32', shape: [4] } }, four), /tensor 'w': invalid header entry: data_offsets/);
  await rejectsOpen(handMade({ w: { dtype: 'F32', shape: [1.5], data_offsets: [0, 16] } }, four), /tensor 'w': invalid header entry/);
  await rejectsOpen(handMade({ w: f32Entry([3], 0, 16) }, four), /tensor 'w': shape \[3\] of F32 needs 12 bytes but data_offsets \[0, 16\] span 16/);
  await rejectsOpen(handMade({ w: f32Entry([4], 16, 0) }, four), /tensor 'w': data_offsets \[16, 0\] end before they begin/);
  await rejectsOpen(handMade({ __metadata__: { format: 3 } }), /__metadata__: must map strings to strings/);
  // Offsets against the data buffer.
  await rejectsOpen(handMade({ w: f32Entry([8], 0, 32) }, four), /tensor 'w': data_offsets \[0, 32\] run past the end of the data \(16 bytes\): file truncated/);
  await rejectsOpen(handMade({ a: f32Entry([4], 0, 16), b: f32Entry([2], 8, 16) }, four), /tensor 'b': data_offsets \[8, 16\] overlap tensor 'a' \[0, 16\]/);
  await rejectsOpen(handMade({ a: f32Entry([2], 0, 8), b: f32Entry([1], 12, 16) }, four), /tensor 'b': data_offsets \[12, 16\] leave a gap after byte 8/);
  await rejectsOpen(handMade({ a: f32Entry([2], 8, 16) }, four), /tensor 'a': data_offsets \[8, 16\] leave a gap after byte 0/);
  await rejectsOpen(handMade({ a: f32Entry([2], 0, 8) }, four), /data: 8 bytes after the last tensor/);
});

test('a header length above the 100 MB limit is refused before it is read', async () => {
  const path = freshPath('huge');
  const fh = await open(path, 'w');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(150_000_000n);
  await fh.write(length, 0, 8, 0);
  await fh.truncate(200_000_000); // sparse: no disk or time spent
  await fh.close();
  await rejectsOpen(path, /header length 150000000 exceeds the 100000000-byte limit/);
});

test('a missing file is named in the error', async () => {
  await rejectsOpen(join(dir, 'nope.safetensors'), /cannot open/);
});

test('writing is atomic: a failed write leaves the old file and no temp file', async () => {
  const sub = mkdtempSync(join(dir, 'atomic-'));
  const path = join(sub, 'model.safetensors');
  await writeSafetensors(path, [{ name: 'a', dtype: 'F32', shape: [1], data: Float32Array.from([1]) }]);
  const before = readFileSync(path);
  await assert.rejects(writeSafetensors(path, [{ name: 'a', dtype: 'F32', shape: [2], data: Float32Array.from([1]) }]), /shape \[2\] has 2 elements, data has 1/);
  await assert.rejects(
    writeSafetensors(path, [{ name: 'a', dtype: 'I64', shape: [1], data: Float32Array.from([1]) as unknown as BigInt64Array }]),
    /dtype I64 needs a BigInt64Array/,
  );
  await assert.rejects(
    writeSafetensors(path, [
      { name: 'a', dtype: 'F32', shape: [1], data: Float32Array.from([1]) },
      { name: 'a', dtype: 'F32', shape: [1], data: Float32Array.from([2]) },
    ]),
    /duplicate or reserved tensor name 'a'/,
  );
  await assert.rejects(writeSafetensors(join(sub, 'no-such-dir', 'x.safetensors'), []), /ENOENT/);
  assert.deepEqual(readFileSync(path), before);
  await writeSafetensors(path, [{ name: 'b', dtype: 'F32', shape: [1], data: Float32Array.from([2]) }]);
  assert.deepEqual(readdirSync(sub), ['model.safetensors']);
  assert.deepEqual([...(await readSafetensors(path)).tensors.keys()], ['b']);
});
