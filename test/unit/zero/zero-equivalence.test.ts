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
import { ZeroTrainer } from '../../../worker/zero-trainer.js';
import { prepareSampleCache } from '../../helpers/sample-cache.js';

// Same seed and global batch (8 samples per step) with 1, 2 and 4 ranks and ZeRO stages 0/1/2,
// all ranks in this process over the in-process ring, dropout on. Expected:
//  - for one N, stages 0, 1 and 2 give bit-identical parameters (the same sums, the same
//    element-wise AdamW, only the range each rank updates differs);
//  - across N, only the order of float32 summation differs (the ring adds ranks in another
//    order, micro-batch sums are grouped differently), so parameters agree to float32 noise:
//    max |dp| <= 1e-6 * max |p| (observed differences are about 1e-7 of max |p|).
const STEPS = 3;
const config = parseT5Config({ ...T5_PRESETS['t5-tiny'], dropout_rate: 0.1 });
const layout = FlatLayout.fromSpecs(t5ParamSpecs(config));

async function train(cache: DataCache, engines: T5Engine[], world: number, stage: ZeroStage): Promise<Float32Array> {
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
      collective: new RingCollective(t),
      adamw: parseAdamWOptions({ weight_decay: 0.01 }),
      schedule: lrSchedule(parseLrScheduleOptions({ learning_rate: 3e-3, lr_scheduler_type: 'linear', warmup_steps: 1 }), STEPS),
      maxGradNorm: 1.0, seed: 11,
      sampler: new DistributedSampler({ size: cache.train.size, seed: 11, world, ...shape }),
      train: cache.train, padId: 0,
      scalars: (key, values) => scalars.contribute(rank, key, values),
    });
  });
  const params = trainers.map((t) => (t as unknown as { o: { params: Float32Array } }).o.params);
  for (let step = 0; step < STEPS; step++) await Promise.all(trainers.map((t) => t.step(0, step, step)));
  // Every rank ends with the same (gathered or replicated) parameters.
  for (const p of params.slice(1)) assert.deepEqual(p, params[0]);
  return params[0]!.subarray(0, layout.totalSize);
}

test('ZeRO: 1, 2 and 4 ranks and stages 0/1/2 reach the same parameters', async () => {
  const dir = await prepareSampleCache();
  const cache = openDataCache(dir);
  const engines = await Promise.all([0, 1, 2, 3].map(() => T5Engine.create(config, { intraOpThreads: 1, dropout: true })));
  try {
    const results = new Map<string, Float32Array>();
    for (const world of [1, 2, 4]) for (const stage of [0, 1, 2] as const) results.set(`${world}/${stage}`, await train(cache, engines, world, stage));
    const ref = results.get('1/0')!;
    const pmax = ref.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    for (const world of [1, 2, 4]) {
      assert.deepEqual(results.get(`${world}/1`), results.get(`${world}/0`), `N=${world}: stage 1 differs from stage 0`);
      assert.deepEqual(results.get(`${world}/2`), results.get(`${world}/0`), `N=${world}: stage 2 differs from stage 0`);
      const p = results.get(`${world}/0`)!;
      let worst = 0;
      for (let i = 0; i < p.length; i++) worst = Math.max(worst, Math.abs(p[i]! - ref[i]!));
      console.log(`N=${world}: max |p - p(N=1)| = ${worst.toExponential(2)} (${(worst / pmax).toExponential(2)} of max |p|)`);
      assert.ok(worst <= 1e-6 * pmax, `N=${world}: parameters differ by ${worst} (max |p| ${pmax})`);
    }
    const moved = ref.some((x, i) => x !== initT5Flat(config, layout, 7)[i]);
    assert.ok(moved, 'training changed the parameters');
  } finally {
    await Promise.all(engines.map((e) => e.release()));
    rmSync(dirname(dir), { recursive: true, force: true });
  }
});
