import { t5Spec } from '../../../shared/models/model-spec.js';
import { T5Family } from '../../../shared/models/t5-family.js';
import test from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { openDataCache, type DataCache } from '../../../shared/data/data-cache.js';
import { DistributedSampler } from '../../../shared/data/sampler.js';
import { parseT5Config } from '../../../shared/models/t5-config.js';
import { T5_PRESETS } from '../../../shared/models/presets.js';
import { t5ParamSpecs } from '../../../shared/models/t5-params.js';
import { parseAdamWOptions } from '../../../shared/optim/adamw.js';
import { lrSchedule, parseLrScheduleOptions } from '../../../shared/optim/schedules.js';
import { flatShard } from '../../../shared/sharding/flat-shard.js';
import { SHARDING_POLICIES, type ZeroStage } from '../../../shared/sharding/sharding-policy.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { initT5Flat } from '../../../shared/weights/init.js';
import { ScalarAllReduce } from '../../../coordinator/scalar-all-reduce.js';
import { inProcessTransports } from '../../../worker/collectives/in-process-transport.js';
import { RingCollective } from '../../../worker/collectives/ring-collective.js';
import { T5Engine } from '../../../worker/engine/t5-engine.js';
import { BlockEngine } from '../../../worker/engine/block-engine.js';
import { ThreadedBlockEngine } from '../../../worker/engine/engine-thread.js';
import { LocalBlockEngine, WholeModelEngine, type TrainingEngine } from '../../../worker/engine/training-engine.js';
import { EngineOptionsSchema } from '../../../shared/onnx/session-options.js';
import { ZeroTrainer } from '../../../worker/zero-trainer.js';
import { prepareSampleCache } from '../../helpers/sample-cache.js';

// Same seed and global batch (8 samples per step) with 1, 2 and 4 ranks and ZeRO stages 0/1/2,
// all ranks in this process over the in-process ring, dropout on; the block engine with
// activation checkpointing on and off, on the calling thread and in a worker thread (overlap_comm),
// and the whole-model engine (the oracle). Expected:
//  - for one N and one engine setting, stages 0, 1 and 2 give bit-identical parameters (the same
//    sums in the same order: stage 2's bucketed reduce-scatter adds each element in the order of
//    the whole-buffer one, and AdamW is element-wise; only the range each rank updates differs);
//  - overlap on and off: bit-identical (the same kernels, only another thread runs them);
//  - across N, checkpointing on/off and block vs whole-model engine, only the order of float32
//    summation differs (ring order, micro-batch grouping, kernels fused differently in the
//    recomputing graph), so parameters agree to float32 noise: max |dp| <= 1e-6 * max |p|
//    (observed differences are about 1e-7 of max |p|).
const STEPS = 3;
const config = parseT5Config({ ...T5_PRESETS['t5-tiny'], dropout_rate: 0.1 });
const layout = FlatLayout.fromSpecs(t5ParamSpecs(config));

interface Setting {
  readonly name: string;
  readonly make: () => Promise<TrainingEngine>;
}

const SETTINGS: readonly Setting[] = [
  { name: 'whole-model', make: async () => new WholeModelEngine(await T5Engine.create(config, { intraOpThreads: 1, dropout: true })) },
  { name: 'blocks', make: async () => new LocalBlockEngine(await BlockEngine.create(new T5Family(config), { intraOpThreads: 1, dropout: true })) },
  { name: 'blocks+checkpointing', make: async () => new LocalBlockEngine(await BlockEngine.create(new T5Family(config), { intraOpThreads: 1, dropout: true, checkpointing: true })) },
  {
    name: 'blocks+checkpointing+overlap',
    make: () => ThreadedBlockEngine.create(t5Spec(config), { ...EngineOptionsSchema.parse({ intraOpThreads: 1 }), dtype: 'float32', dropout: true, checkpointing: true }),
  },
];

async function train(cache: DataCache, engines: TrainingEngine[], world: number, stage: ZeroStage): Promise<Float32Array> {
  const shape = { 1: { perDeviceBatch: 4, gradAccum: 2 }, 2: { perDeviceBatch: 4, gradAccum: 1 }, 4: { perDeviceBatch: 2, gradAccum: 1 } }[world]!;
  const scalars = new ScalarAllReduce(world);
  const transports = inProcessTransports(world);
  const init = initT5Flat(config, layout, 7);
  const trainers = transports.map((t, rank) => {
    const shard = flatShard(layout.totalSize, world, rank);
    const params = new Float32Array(shard.paddedSize);
    params.set(init);
    return new ZeroTrainer({
      engine: engines[rank]!, layout, shard, params, policy: SHARDING_POLICIES[stage],
      // Small buckets (t5-tiny's layer units are ~10k elements): several per step, some holding
      // several units, most split over ranks.
      reduceBucketSize: 12_000,
      collective: new RingCollective(t),
      adamw: parseAdamWOptions({ weight_decay: 0.01 }),
      schedule: lrSchedule(parseLrScheduleOptions({ learning_rate: 3e-3, lr_scheduler_type: 'linear', warmup_steps: 1 }), STEPS),
      maxGradNorm: 1.0, seed: 11,
      sampler: new DistributedSampler({ size: cache.train.size, seed: 11, world, ...shape }),
      train: cache.train, padId: 0,
      scalars: (key, values) => scalars.contribute(rank, key, values),
    });
  });
  for (let step = 0; step < STEPS; step++) await Promise.all(trainers.map((t) => t.step(0, step, step)));
  // Every rank ends with the same (gathered or replicated) parameters.
  const params = trainers.map((t) => t.params!.array);
  for (const p of params.slice(1)) assert.deepEqual(p, params[0]);
  if (stage === 2 && engines[0]!.units.length > 1) assert.ok(trainers[0]!.reducer.bucketCount > 3, `only ${trainers[0]!.reducer.bucketCount} buckets`);
  return params[0]!.subarray(0, layout.totalSize);
}

test('ZeRO: 1, 2 and 4 ranks, stages 0/1/2, block engine with checkpointing and overlap on and off, and the whole-model engine reach the same parameters', async () => {
  const dir = await prepareSampleCache();
  const cache = openDataCache(dir);
  const results = new Map<string, Float32Array>();
  try {
    for (const setting of SETTINGS) {
      const t0 = performance.now();
      const engines = await Promise.all([0, 1, 2, 3].map(() => setting.make()));
      try {
        for (const world of [1, 2, 4]) for (const stage of [0, 1, 2] as const) results.set(`${setting.name}/${world}/${stage}`, await train(cache, engines, world, stage));
      } finally {
        await Promise.all(engines.map((e) => e.release()));
      }
      console.log(`${setting.name}: 9 trainings in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    const ref = results.get('whole-model/1/0')!;
    const pmax = ref.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    for (const setting of SETTINGS) {
      for (const world of [1, 2, 4]) {
        const p = results.get(`${setting.name}/${world}/0`)!;
        assert.deepEqual(results.get(`${setting.name}/${world}/1`), p, `${setting.name} N=${world}: stage 1 differs from stage 0`);
        assert.deepEqual(results.get(`${setting.name}/${world}/2`), p, `${setting.name} N=${world}: stage 2 differs from stage 0`);
        let worst = 0;
        for (let i = 0; i < p.length; i++) worst = Math.max(worst, Math.abs(p[i]! - ref[i]!));
        console.log(`${setting.name} N=${world}: max |p - p(whole-model, N=1)| = ${worst.toExponential(2)} (${(worst / pmax).toExponential(2)} of max |p|)`);
        assert.ok(worst <= 1e-6 * pmax, `${setting.name} N=${world}: parameters differ by ${worst} (max |p| ${pmax})`);
      }
    }
    for (const world of [1, 2, 4]) {
      assert.deepEqual(results.get(`blocks+checkpointing+overlap/${world}/2`), results.get(`blocks+checkpointing/${world}/2`), `N=${world}: overlap changes the result`);
    }
    const moved = ref.some((x, i) => x !== initT5Flat(config, layout, 7)[i]);
    assert.ok(moved, 'training changed the parameters');
  } finally {
    rmSync(dirname(dir), { recursive: true, force: true });
  }
});
