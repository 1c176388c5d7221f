import test from 'node:test';
import assert from 'node:assert/strict';
import type { LoraSettings } from '../../../shared/models/lora.js';
import { modelFamily, type ModelSpec } from '../../../shared/models/model-spec.js';
import { EngineOptionsSchema } from '../../../shared/onnx/session-options.js';
import { UnitSharding } from '../../../shared/sharding/unit-shard.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { initFlatRange } from '../../../shared/weights/init.js';
import { inProcessTransports } from '../../../worker/collectives/in-process-transport.js';
import { RingCollective } from '../../../worker/collectives/ring-collective.js';
import { BlockEngine } from '../../../worker/engine/block-engine.js';
import { ThreadedBlockEngine } from '../../../worker/engine/engine-thread.js';
import { LocalBlockEngine, type TrainingEngine } from '../../../worker/engine/training-engine.js';
import { UnitGatherer, type GathererSettings } from '../../../worker/param-gatherer.js';
import { neoxBatch, tinyNeoX } from '../models/neox-helpers.js';

// ZeRO-3 partitions a LoRA run's frozen base like its trainable parameters ([Note: unit sharding],
// param-gatherer.ts): each rank keeps its chunk of every base unit and the engine receives the
// units along the same traces. Gathering moves values and never adds them, and the engine runs
// the same sessions on the same values, so a pass over the partitioned base must give the same
// BITS as the engine holding the base whole: loss, every adapter gradient unit, the eval loss.
// Checked for N = 2 over the in-process ring, with the engine on this thread and in a worker
// thread (the fetch protocol), with units kept or dropped after use; and no rank ever holds the
// whole base: its shard is half of it, and (units dropped) the most gathered at once stays below it.

const config = tinyNeoX();
const lora: LoraSettings = { r: 4, alpha: 16, dropout: 0.1, targetModules: ['query_key_value', 'dense_4h_to_h'] };
const spec: ModelSpec = { modelType: 'gpt_neox', configRaw: config.raw, lora };
const family = modelFamily(spec);
const frozenLayout = FlatLayout.fromSpecs(family.frozenSpecs());
const base = initFlatRange(family.frozenSpecs(), frozenLayout, 3, 0, frozenLayout.totalSize);
const adapters = Float32Array.from({ length: FlatLayout.fromSpecs(family.paramSpecs()).totalSize }, (_, i) => 0.05 * Math.sin(1 + i * 0.37));
const batch = neoxBatch();
const key = { seed: 9, step: 1, sampleIndices: [4, 7] };
const WORLD = 2;

const SETTINGS: Record<string, GathererSettings> = {
  'keep+prefetch': { prefetchBucketSize: 20_000, maxLiveParameters: 1e9, maxReuseDistance: 1e9, persistenceThreshold: 0 },
  'drop, no prefetch, persistent norms': { prefetchBucketSize: 0, maxLiveParameters: 1e9, maxReuseDistance: 0, persistenceThreshold: 200 },
};

type Grads = Map<string, Float32Array>;

async function pass(engine: TrainingEngine, params: Parameters<TrainingEngine['forwardBackward']>[0]): Promise<{ loss: number; tokens: number; grads: Grads }> {
  const grads: Grads = new Map();
  const r = await engine.forwardBackward(params, batch, key, (lo, hi, g) => void grads.set(`${lo}-${hi}`, Float32Array.from(g)));
  return { loss: r.lossSum, tokens: r.tokenCount, grads };
}

async function partitioned(engines: readonly TrainingEngine[], settings: GathererSettings) {
  const collectives = inProcessTransports(WORLD).map((t) => new RingCollective(t));
  const gatherers = collectives.map((collective, rank) => {
    const engine = engines[rank]!;
    const sharding = new UnitSharding(engine.units, WORLD, rank);
    const shard = new Float32Array(sharding.shardSize);
    for (const p of sharding.pieces) shard.set(adapters.subarray(p.lo, p.hi), p.at);
    const fs = new UnitSharding(engine.frozenUnits, WORLD, rank);
    const frozen = new Float32Array(fs.shardSize);
    for (const p of fs.pieces) frozen.set(base.subarray(p.lo, p.hi), p.at);
    return new UnitGatherer(sharding, shard, collective, settings, { sharding: fs, shard: frozen });
  });
  await Promise.all(gatherers.map((g) => g.gatherPersistent('init')));
  const train = await Promise.all(engines.map((e, rank) => pass(e, gatherers[rank]!.pass(e.traces!.train, 'train'))));
  const evalLoss = await Promise.all(engines.map((e, rank) => e.forwardLoss(gatherers[rank]!.pass(e.traces!.eval, 'eval'), batch)));
  return { train, evalLoss, gatherers };
}

test('ZeRO-3 with LoRA: the frozen base partitioned over 2 ranks gives the bits of the base held whole, and no rank holds it whole', async () => {
  const options = { intraOpThreads: 1, dropout: true, checkpointing: true };
  const whole = new LocalBlockEngine(await BlockEngine.create(family, options, base));
  const local = await Promise.all([0, 1].map(async () => new LocalBlockEngine(await BlockEngine.create(family, options, 'partitioned'))));
  const threaded = await Promise.all([0, 1].map(() => ThreadedBlockEngine.create(spec, { ...EngineOptionsSchema.parse({ intraOpThreads: 1 }), dtype: 'float32', dropout: true, checkpointing: true }, 'partitioned')));
  try {
    const reference = await pass(whole, { array: adapters.slice() });
    const referenceEval = await whole.forwardLoss({ array: adapters.slice() }, batch);
    assert.ok(reference.tokens > 0 && [...reference.grads.values()].some((g) => g.some((x) => x !== 0)), 'the reference pass computed no gradient');

    // The base's units tile its layout, traced after the trainable units; the frozen embedding
    // block has no backward, so its backward position (the last) gathers nothing.
    const e = local[0]!;
    assert.equal(e.frozenUnits.reduce((n, u) => n + u.hi - u.lo, 0), frozenLayout.totalSize);
    assert.deepEqual(e.traces!.train.at(-1), []);
    assert.ok(e.traces!.eval[0]!.every((u) => u >= e.units.length), 'the embedding block reads only frozen units');
    assert.deepEqual(whole.frozenUnits, [], 'an engine holding the base whole has no frozen units to gather');

    for (const [engines, where] of [[local, 'this thread'], [threaded, 'engine thread']] as const) {
      for (const [name, settings] of Object.entries(SETTINGS)) {
        const { train, evalLoss, gatherers } = await partitioned(engines, settings);
        for (const [rank, r] of train.entries()) {
          const what = `${where}, ${name}, rank ${rank}`;
          assert.equal(r.loss, reference.loss, `${what}: loss`);
          assert.equal(r.tokens, reference.tokens, `${what}: tokens`);
          assert.deepEqual([...r.grads.keys()], [...reference.grads.keys()], `${what}: gradient units`);
          for (const [k, g] of reference.grads) assert.deepEqual(r.grads.get(k), g, `${what}: gradient of ${k}`);
          assert.equal(evalLoss[rank]!.lossSum, referenceEval.lossSum, `${what}: eval loss`);
        }
        for (const g of gatherers) {
          const f = g.frozen!;
          const owned = f.sharding.pieces.reduce((n, p) => n + p.hi - p.lo, 0);
          // Half of the base per rank, up to the padding of each unit to a multiple of N x SHARD_ALIGN.
          assert.ok(f.shard.length <= frozenLayout.totalSize / WORLD + e.frozenUnits.length * f.sharding.paddedSize(0), `frozen shard of ${f.shard.length} elements`);
          assert.ok(owned < frozenLayout.totalSize, 'a rank owns the whole base');
          console.log(`${where}, ${name}: rank ${f.sharding.rank} owns ${owned} of ${frozenLayout.totalSize} base elements, peak gathered ${g.peakLive}`);
        }
        const owners = gatherers.reduce((n, g) => n + g.frozen!.sharding.pieces.reduce((m, p) => m + p.hi - p.lo, 0), 0);
        assert.equal(owners, frozenLayout.totalSize, 'every base element is owned by exactly one rank');
        if (settings.maxReuseDistance === 0) assert.ok(gatherers[0]!.peakLive < frozenLayout.totalSize, `peak gathered ${gatherers[0]!.peakLive} elements: the whole base was live`);
      }
    }
  } finally {
    await whole.release();
    for (const x of [...local, ...threaded]) await x.release();
  }
});
