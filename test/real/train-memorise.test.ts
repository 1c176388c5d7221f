import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { padSeq2SeqBatch } from '../../shared/models/batch.js';
import { parseT5Config } from '../../shared/models/t5-config.js';
import { t5ParamSpecs } from '../../shared/models/t5-params.js';
import { parseAdamWOptions } from '../../shared/optim/adamw.js';
import { lrSchedule, parseLrScheduleOptions } from '../../shared/optim/schedules.js';
import { ByteTokenizer } from '../../shared/tokenizer/byte-tokenizer.js';
import { FlatLayout } from '../../shared/weights/flat-layout.js';
import { initT5Flat } from '../../shared/weights/init.js';
import { T5Engine } from '../../worker/engine/t5-engine.js';
import { SingleProcessTrainer } from '../../worker/single-process-trainer.js';
import { sharedDataDir } from './shared-data.js';

// A tiny T5 v1.1 memorises four real Korean samples (title -> GPT-4 keyphrases) from the team's V2
// data with the byte-level tokenizer: the token-mean loss must fall at least 10x.
test('a tiny T5 memorises four Korean samples (loss falls >= 10x)', async () => {
  const rows = readFileSync(join(sharedDataDir(), 'seed-v2-gpt4.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .slice(0, 4)
    .map((l) => JSON.parse(l) as { title_content: string; keyphrases: string });
  const tok = new ByteTokenizer();
  const clip = (ids: number[], n: number) => [...ids.slice(0, n - 1), tok.eosId];
  const batch = padSeq2SeqBatch(
    rows.map((r) => ({ inputIds: clip(tok.encode(`generate keyphrases: ${r.title_content}`), 96), labelIds: clip(tok.encode(r.keyphrases), 40) })),
    tok.padId,
  );
  const config = parseT5Config({
    vocab_size: tok.vocabSize, d_model: 64, d_kv: 16, d_ff: 128, num_layers: 2, num_decoder_layers: 2, num_heads: 4,
    feed_forward_proj: 'gated-gelu', tie_word_embeddings: false, dropout_rate: 0.0,
  });
  const layout = FlatLayout.fromSpecs(t5ParamSpecs(config));
  const params = initT5Flat(config, layout, 0);
  const engine = await T5Engine.create(config, { intraOpThreads: 2 });
  const steps = 150;
  const trainer = new SingleProcessTrainer({
    engine, layout, params, seed: 0, maxGradNorm: 1.0,
    adamw: parseAdamWOptions({ weight_decay: 0.01 }),
    schedule: lrSchedule(parseLrScheduleOptions({ learning_rate: 1e-2, lr_scheduler_type: 'constant' }), steps),
  });
  try {
    const losses: number[] = [];
    const started = performance.now();
    for (let s = 0; s < steps; s++) losses.push((await trainer.step([{ batch, sampleIndices: [0, 1, 2, 3] }])).loss);
    const first = losses[0]!;
    const last = losses[losses.length - 1]!;
    console.log(`memorise: loss ${first.toFixed(3)} -> ${last.toFixed(4)} (${(first / last).toFixed(1)}x) in ${steps} steps, ${((performance.now() - started) / steps).toFixed(1)} ms/step`);
    assert.ok(first / last >= 10, `loss fell only ${first / last}x (${first} -> ${last})`);
  } finally {
    await engine.release();
  }
});
