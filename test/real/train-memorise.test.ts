import { T5Family } from '../../shared/models/t5-family.js';
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDataCache } from '../../shared/data/data-cache.js';
import { resolveRules } from '../../shared/data/data-rules.js';
import { prepareData } from '../../shared/data/prepare.js';
import { DistributedSampler } from '../../shared/data/sampler.js';
import { parseT5Config } from '../../shared/models/t5-config.js';
import { t5ParamSpecs } from '../../shared/models/t5-params.js';
import { parseAdamWOptions } from '../../shared/optim/adamw.js';
import { lrSchedule, parseLrScheduleOptions } from '../../shared/optim/schedules.js';
import { flatShard } from '../../shared/sharding/flat-shard.js';
import { SHARDING_POLICIES } from '../../shared/sharding/sharding-policy.js';
import { ByteTokenizer } from '../../shared/tokenizer/byte-tokenizer.js';
import { FlatLayout } from '../../shared/weights/flat-layout.js';
import { initT5Flat } from '../../shared/weights/init.js';
import { inProcessTransports } from '../../worker/collectives/in-process-transport.js';
import { RingCollective } from '../../worker/collectives/ring-collective.js';
import { BlockEngine } from '../../worker/engine/block-engine.js';
import { LocalBlockEngine } from '../../worker/engine/training-engine.js';
import { ZeroTrainer } from '../../worker/zero-trainer.js';
import { sharedDataDir } from './shared-data.js';

const utf8 = new TextEncoder();

/** The longest prefix of `text` of at most `bytes` UTF-8 bytes that ends between characters. */
function cutToBytes(text: string, bytes: number): string {
  let out = '';
  let used = 0;
  for (const ch of text) {
    used += utf8.encode(ch).length;
    if (used > bytes) break;
    out += ch;
  }
  return out;
}

// A tiny T5 v1.1 memorises four real Korean samples (title -> GPT-4 keyphrases) from the team's V2
// data with the byte-level tokenizer: the token-mean loss must fall at least 10x. The samples go
// through `prepareData` into a cache, and the training step is the workers' (ZeroTrainer, one rank).
test('a tiny T5 memorises four Korean samples (loss falls >= 10x)', async () => {
  const tok = new ByteTokenizer();
  const prefix = resolveRules('v4').input_prefix;
  // Inputs of at most 96 tokens and labels of at most 40, eos included, cut between characters.
  const rows = readFileSync(join(sharedDataDir(), 'seed-v2-gpt4.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .slice(0, 4)
    .map((l) => JSON.parse(l) as { title_content: string; keyphrases: string })
    .map((r) => ({ title_content: cutToBytes(r.title_content, 95 - utf8.encode(prefix).length), keyphrases: cutToBytes(r.keyphrases, 39) }));
  const dir = mkdtempSync(join(tmpdir(), 'kp-memorise-'));
  try {
    const source = join(dir, 'rows.jsonl');
    writeFileSync(source, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
    // Rules that keep the texts as written: no whitespace folding, the label split on "," and
    // joined back with "," (no cleaning, no cap), no length filter, no eval split.
    await prepareData({
      inputs: [source],
      tokenizer: tok,
      tokenizerSpec: 'builtin',
      rules: resolveRules('v4', [{
        normalize_whitespace: false, keyphrase_separator: ',', target_separator: ',', clean_keyphrases: false, max_keyphrases: null,
        min_input_tokens: null, max_input_tokens: null, max_target_tokens: null, eval_ratio: 0,
      }]),
      outDir: join(dir, 'cache'),
    });
    const cache = openDataCache(join(dir, 'cache'), { tokenizerFingerprint: tok.fingerprint });
    assert.equal(cache.train.size, 4);

    const config = parseT5Config({
      vocab_size: tok.vocabSize, d_model: 64, d_kv: 16, d_ff: 128, num_layers: 2, num_decoder_layers: 2, num_heads: 4,
      feed_forward_proj: 'gated-gelu', tie_word_embeddings: false, dropout_rate: 0.0,
    });
    const layout = FlatLayout.fromSpecs(t5ParamSpecs(config));
    const shard = flatShard(layout.totalSize, 1, 0);
    const params = new Float32Array(shard.paddedSize);
    params.set(initT5Flat(config, layout, 0));
    const engine = new LocalBlockEngine(await BlockEngine.create(new T5Family(config), { intraOpThreads: 2 }));
    const collective = new RingCollective(inProcessTransports(1)[0]!);
    const steps = 150;
    const trainer = new ZeroTrainer({
      engine, layout, shard, params, policy: SHARDING_POLICIES[0], seed: 0, maxGradNorm: 1.0,
      adamw: parseAdamWOptions({ weight_decay: 0.01 }),
      schedule: lrSchedule(parseLrScheduleOptions({ learning_rate: 1e-2, lr_scheduler_type: 'constant' }), steps),
      // All four samples in one micro-batch, in the cache's order, every step: an epoch is one step.
      sampler: new DistributedSampler({ size: cache.train.size, seed: 0, perDeviceBatch: 4, gradAccum: 1, world: 1, shuffle: false }),
      train: cache.train, padId: tok.padId,
      // One rank: the collectives return at once and the scalar all-reduce is the identity.
      collective, scalars: async (_key, values) => values,
    });
    try {
      const losses: number[] = [];
      const started = performance.now();
      for (let s = 0; s < steps; s++) losses.push((await trainer.step(s, 0, s)).globalLoss);
      const first = losses[0]!;
      const last = losses[losses.length - 1]!;
      console.log(`memorise: loss ${first.toFixed(3)} -> ${last.toFixed(4)} (${(first / last).toFixed(1)}x) in ${steps} steps, ${((performance.now() - started) / steps).toFixed(1)} ms/step`);
      assert.ok(first / last >= 10, `loss fell only ${first / last}x (${first} -> ${last})`);
    } finally {
      await collective.close();
      await engine.release();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
