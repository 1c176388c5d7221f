import test from 'node:test';
import assert from 'node:assert/strict';
import { padSeq2SeqBatch } from '../../shared/models/batch.js';
import { parseT5Config, PKO_T5_BASE } from '../../shared/models/t5-config.js';
import { t5ParamSpecs } from '../../shared/models/t5-params.js';
import { parseAdamWOptions } from '../../shared/optim/adamw.js';
import { lrSchedule, parseLrScheduleOptions } from '../../shared/optim/schedules.js';
import { rngStream } from '../../shared/random.js';
import { FlatLayout } from '../../shared/weights/flat-layout.js';
import { initT5Flat } from '../../shared/weights/init.js';
import { T5Engine } from '../../worker/engine/t5-engine.js';
import { SingleProcessTrainer } from '../../worker/single-process-trainer.js';

// The pko-t5-base shape (0.25 G parameters) builds, and takes one real training step on CPU at the
// reference workload's lengths (512 input, 64 target tokens, batch 1, dropout 0.1 as in training).
test('pko-t5-base shape: build and one training step (512/64 tokens, batch 1)', async () => {
  const t0 = performance.now();
  const config = parseT5Config(PKO_T5_BASE);
  const layout = FlatLayout.fromSpecs(t5ParamSpecs(config));
  const params = initT5Flat(config, layout, 0);
  const engine = await T5Engine.create(config, { intraOpThreads: 2, dropout: true });
  const built = performance.now();
  const r = rngStream(3, 1);
  const ids = (n: number) => [...Array.from({ length: n - 1 }, () => 3 + Math.floor(r.uniform() * (config.vocabSize - 3))), config.eosTokenId];
  const batch = padSeq2SeqBatch([{ inputIds: ids(512), labelIds: ids(64) }], config.padTokenId);
  const before = params.slice(0, 1000);
  const trainer = new SingleProcessTrainer({
    engine, layout, params, seed: 0, maxGradNorm: 1.0,
    adamw: parseAdamWOptions({ weight_decay: 0.01 }),
    schedule: lrSchedule(parseLrScheduleOptions({ learning_rate: 3e-6, lr_scheduler_type: 'linear' }), 10),
  });
  try {
    const report = await trainer.step([{ batch, sampleIndices: [0] }]);
    const stepped = performance.now();
    const rssGiB = process.resourceUsage().maxRSS / 1024 ** 2;
    console.log(
      `pko-t5-base: ${layout.totalSize} params; graph+sessions ${((built - t0) / 1000).toFixed(1)} s; ` +
        `one step (F+B with dropout + clip + AdamW) ${((stepped - built) / 1000).toFixed(1)} s; loss ${report.loss.toFixed(3)}; ` +
        `grad norm ${report.gradNorm.toFixed(2)}; peak RSS ${rssGiB.toFixed(2)} GiB`,
    );
    // 2 x 50358 x 768 (shared, lm_head) + 12 encoder + 12 decoder layers of d_model 768, d_ff 2048.
    assert.equal(layout.totalSize, 275_579_136);
    assert.ok(Number.isFinite(report.loss) && report.loss > 0);
    assert.equal(report.tokens, 64);
    assert.ok(params.slice(0, 1000).some((x, i) => x !== before[i]), 'the step changed the parameters');
  } finally {
    await engine.release();
  }
});
