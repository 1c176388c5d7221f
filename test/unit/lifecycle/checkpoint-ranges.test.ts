import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MANIFEST, readVerifiedManifest, writeManifest, type CheckpointManifest } from '../../../shared/checkpoint/checkpoint-manifest.js';
import { readRange, readRanges, writeRangeShard, type FlatRange, type ShardFile, type ShardTensor } from '../../../shared/checkpoint/range-shard.js';
import { InputFileError } from '../../../shared/errors.js';
import { SafetensorsFile } from '../../../shared/weights/safetensors.js';

// [Note: universal checkpoint] with files of several ranges: a stage-3 rank owns its piece of every
// parameter unit. Whatever files hold, readRange over any window gives the flat buffer back.

const dir = mkdtempSync(join(tmpdir(), 'kp-ckpt-ranges-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const PARAMS = 103;
const PADDED = 104;
// Three units, each cut two ways (rank 0 the first half, rank 1 the second); not world-aligned.
const UNITS: readonly FlatRange[] = [{ start: 0, end: 40 }, { start: 40, end: 75 }, { start: 75, end: PARAMS }];
const pieceOf = (u: FlatRange, rank: number): FlatRange => {
  const mid = u.start + Math.ceil((u.end - u.start) / 2);
  return rank === 0 ? { start: u.start, end: mid } : { start: mid, end: u.end };
};

/** Distinct values per tensor, so a tensor mix-up or an off-by-one shows. */
const flat: Record<ShardTensor, Float32Array> = {
  params: Float32Array.from({ length: PARAMS }, (_, i) => i + 1),
  exp_avg: Float32Array.from({ length: PARAMS }, (_, i) => -(i + 1)),
  exp_avg_sq: Float32Array.from({ length: PARAMS }, (_, i) => 1000 + i),
};

function concat(src: Float32Array, ranges: readonly FlatRange[]): Float32Array {
  const out = new Float32Array(ranges.reduce((n, r) => n + r.end - r.start, 0));
  let at = 0;
  for (const r of ranges) {
    out.set(src.subarray(r.start, r.end), at);
    at += r.end - r.start;
  }
  return out;
}

function manifest(files: CheckpointManifest['files'], over: Partial<CheckpointManifest> = {}): CheckpointManifest {
  return {
    version: 1, run_id: 'ranges', steps_done: 2, epoch: 0, world: 2, global_batch_size: 2, zero_stage: 3, param_count: PARAMS, padded_size: PADDED,
    model: 'preset:t5-tiny', seed: 0, data_seed: 0, files, evals: [], best: null, created: new Date(0).toISOString(), ...over,
  };
}

async function writeStage3(at: string): Promise<ShardFile[]> {
  mkdirSync(at, { recursive: true });
  const files: ShardFile[] = [];
  for (const rank of [0, 1]) {
    const ranges = UNITS.map((u) => pieceOf(u, rank));
    files.push(await writeRangeShard(at, rank, 2, ranges, {
      params: concat(flat.params, ranges), exp_avg: concat(flat.exp_avg, ranges), exp_avg_sq: concat(flat.exp_avg_sq, ranges),
    }, 2));
  }
  return files;
}

test('a stage-3-like checkpoint (several ranges per file) reads back any window, each file opened once', async () => {
  const ckpt = join(dir, 'stage3');
  const files = await writeStage3(ckpt);
  assert.deepEqual(files[0]!.ranges, [{ start: 0, end: 20 }, { start: 40, end: 58 }, { start: 75, end: 89 }]);
  assert.equal(files[0]!.start, 0);
  assert.equal(files[0]!.end, 89);
  assert.equal(files[1]!.start, 20);
  assert.equal(files[1]!.end, PARAMS);
  const st = await SafetensorsFile.open(join(ckpt, files[1]!.name));
  assert.equal(st.metadata.ranges, '20:40,58:75,89:103');
  await st.close();

  await writeManifest(ckpt, manifest(files));
  const m = await readVerifiedManifest(ckpt);
  assert.deepEqual(m.files.map((f) => f.ranges), files.map((f) => f.ranges));

  const opened: string[] = [];
  const open = SafetensorsFile.open;
  SafetensorsFile.open = async (path: string) => {
    opened.push(path);
    return open.call(SafetensorsFile, path);
  };
  try {
    // Windows starting and ending at, just before and just after every range and file boundary.
    const cuts = [0, 1, 19, 20, 21, 39, 40, 41, 57, 58, 59, 74, 75, 76, 88, 89, 90, 102, PARAMS];
    for (const tensor of ['params', 'exp_avg', 'exp_avg_sq'] as const) {
      for (const s of cuts) {
        for (const e of cuts) {
          if (e <= s) continue;
          const dest = new Float32Array(e - s);
          opened.length = 0;
          await readRange(ckpt, m.files, tensor, s, dest);
          assert.deepEqual(dest, flat[tensor].subarray(s, e), `${tensor} [${s}, ${e})`);
          assert.equal(new Set(opened).size, opened.length, `[${s}, ${e}): a file opened twice: ${opened.join(', ')}`);
        }
      }
    }
    // Several windows in one call (a stage-3 rank's chunks, read for another world size): each
    // window as readRange gives it, each file opened once for all of them.
    const windows = [[3, 25], [38, 60], [70, 71], [88, PARAMS]].map(([s, e]) => ({ start: s!, dest: new Float32Array(e! - s!) }));
    opened.length = 0;
    await readRanges(ckpt, m.files, 'exp_avg', windows);
    for (const w of windows) assert.deepEqual(w.dest, flat.exp_avg.subarray(w.start, w.start + w.dest.length), `window at ${w.start}`);
    assert.equal(opened.length, files.length, `files opened: ${opened.join(', ')}`);
  } finally {
    SafetensorsFile.open = open;
  }

  // Past the parameters (the padding tail no file stores) dest keeps what it had.
  const tail = new Float32Array(PADDED - 90).fill(-7);
  await readRange(ckpt, m.files, 'params', 90, tail);
  assert.deepEqual(tail, Float32Array.from([...flat.params.subarray(90), -7]));
});

test('writeRangeShard checks the tensors against the ranges and the ranges against each other', async () => {
  const at = join(dir, 'bad-write');
  mkdirSync(at);
  const z = (n: number): Record<ShardTensor, Float32Array> => ({ params: new Float32Array(n), exp_avg: new Float32Array(n), exp_avg_sq: new Float32Array(n) });
  await assert.rejects(writeRangeShard(at, 0, 1, [{ start: 0, end: 4 }, { start: 8, end: 10 }], z(5), 0), (e: unknown) => e instanceof RangeError && /'params' has 5 elements but the ranges 0:4,8:10 hold 6/u.test(e.message));
  await assert.rejects(writeRangeShard(at, 0, 1, { start: 0, end: 4 }, z(3), 0), RangeError);
  await assert.rejects(writeRangeShard(at, 0, 1, [{ start: 8, end: 10 }, { start: 0, end: 4 }], z(6), 0), /sorted and disjoint/u);
  await assert.rejects(writeRangeShard(at, 0, 1, [{ start: 0, end: 4 }, { start: 4, end: 4 }], z(4), 0), /non-empty/u);
});

test('an old single-range manifest (files without ranges, stage 1, padded tail covered) still verifies and reads', async () => {
  const ckpt = join(dir, 'old');
  mkdirSync(ckpt);
  const half = PADDED / 2;
  const padded = new Float32Array(PADDED);
  padded.set(flat.params);
  const files = [];
  for (const rank of [0, 1]) {
    const r = { start: rank * half, end: (rank + 1) * half };
    const f = await writeRangeShard(ckpt, rank, 2, r, { params: padded.slice(r.start, r.end), exp_avg: new Float32Array(half), exp_avg_sq: new Float32Array(half) }, 2);
    assert.deepEqual(f.ranges, [r]);
    const { ranges: _dropped, ...old } = f;
    files.push(old);
  }
  // Written as the JSON of a manifest from before `ranges` (and without going through the schema).
  writeFileSync(join(ckpt, MANIFEST), JSON.stringify(manifest(files, { zero_stage: 1 })));
  const m = await readVerifiedManifest(ckpt);
  assert.equal(m.files[0]!.ranges, undefined);
  const dest = new Float32Array(PARAMS);
  await readRange(ckpt, m.files, 'params', 0, dest);
  assert.deepEqual(dest, flat.params);
});

test('overlapping, gapped or short ranges fail verification naming the file', async () => {
  const ckpt = join(dir, 'broken');
  const files = await writeStage3(ckpt);
  const [a, b] = [files[0]!, files[1]!];
  const verifyWith = async (fs: ShardFile[], over: Partial<CheckpointManifest> = {}): Promise<void> => {
    writeFileSync(join(ckpt, MANIFEST), JSON.stringify(manifest(fs, over)));
    await readVerifiedManifest(ckpt);
  };
  const fails = (file: string, detail: RegExp) => (e: unknown): boolean => {
    assert.ok(e instanceof InputFileError, String(e));
    assert.match(e.message, new RegExp(`${file}.*${detail.source}`, 'u'));
    return true;
  };
  await verifyWith(files); // the good one verifies as written by hand too

  // Rank 1 claims [15, 40) where rank 0 holds [0, 20): [15, 20) is held twice.
  const overlapping = { ...b, start: 15, ranges: [{ start: 15, end: 40 }, ...b.ranges.slice(1)] };
  await assert.rejects(verifyWith([a, overlapping]), fails(b.name, /\[15, 40\) overlaps \[15, 20\) already held by rank-0-of-2/u));

  // Rank 1 drops its piece of the second unit: [58, 75) is nobody's.
  const gapped = { ...b, ranges: [b.ranges[0]!, b.ranges[2]!] };
  await assert.rejects(verifyWith([a, gapped]), fails(a.name, /leave \[58, 75\) of the flat buffer uncovered/u));

  // Rank 1's last range stops short of the parameters.
  const short = { ...b, end: 100, ranges: [b.ranges[0]!, b.ranges[1]!, { start: 89, end: 100 }] };
  await assert.rejects(verifyWith([a, short]), fails(b.name, /\[100, 103\) is uncovered/u));

  // A file whose own ranges overlap, and one whose start/end disagree with its ranges.
  const selfOverlap = { ...a, ranges: [{ start: 0, end: 20 }, { start: 10, end: 58 }, a.ranges[2]!] };
  await assert.rejects(verifyWith([selfOverlap, b]), fails(a.name, /not sorted and disjoint/u));
  await assert.rejects(verifyWith([{ ...a, end: 90 }, b]), fails(a.name, /differ from its ranges' extent/u));

  // Ranges past the padded size, and an empty range (schema).
  await assert.rejects(verifyWith(files, { padded_size: 102, param_count: 100 }), fails(b.name, /past the padded size 102/u));
  await assert.rejects(verifyWith([{ ...a, ranges: [...a.ranges, { start: 89, end: 89 }] }, b]), /non-empty/u);
});
