import { T5BlockEngine } from './dist/worker/engine/t5-block-engine.js';
import { parseT5Config } from './dist/shared/models/t5-config.js';
import { T5_PRESETS } from './dist/shared/models/presets.js';
import { randomBatch } from './dist/bench/random-batch.js';
import { initT5Flat } from './dist/shared/weights/init.js';
import { FlatLayout } from './dist/shared/weights/flat-layout.js';
import { t5ParamSpecs } from './dist/shared/models/t5-params.js';
const arena = process.argv[2] === 'on';
const b = Number(process.argv[3] ?? 2);
const config = parseT5Config(T5_PRESETS['t5-small-bytes']);
const mb = () => `rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB, peak ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`;
const params = initT5Flat(config, FlatLayout.fromSpecs(t5ParamSpecs(config)), 1);
const e = await T5BlockEngine.create(config, { intraOpThreads: 1, dropout: true, checkpointing: true, memoryArena: arena });
console.log('created', mb());
const shapes = process.argv[4] === 'largest-first' ? [[939, 190], [600, 100], [700, 120], [850, 160], [939, 190], [500, 80], [939, 190]] : [[600, 100], [939, 190], [700, 120], [850, 160], [939, 190], [500, 80], [939, 190]];
let ms = 0;
for (const [s, t] of shapes) {
  const t0 = performance.now();
  await e.forwardBackward(params, randomBatch(config, b, s, t), { seed: 1, step: 1, sampleIndices: Array.from({ length: b }, (_, i) => i) }, () => {});
  const dt = performance.now() - t0; ms += dt;
  console.log(`arena ${arena} b ${b} ${s}/${t}: ${dt.toFixed(0)} ms, ${mb()}`);
}
console.log(`arena ${arena}: total ${ms.toFixed(0)} ms`);
