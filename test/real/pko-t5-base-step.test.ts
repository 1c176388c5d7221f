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
import { parseT5Config, PKO_T5_BASE } from '../../shared/models/t5-config.js';
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
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The first `bytes` UTF-8 bytes of `text`, or undefined when it is shorter or the cut falls inside a character. */
function firstBytes(text: string, bytes: number): string | undefined {
  const b = utf8.encode(text);
  if (b.length < bytes) return undefined;
  try {
    return strictUtf8.decode(b.subarray(0, bytes));
  } catch {
    return undefined;
  }
}

// The pko-t5-base shape (0.25 G parameters) builds, and takes one real training step on CPU at the
// reference workload's lengths (512 input, 64 target tokens, batch 1, dropout 0.1 as in training).
// The sample is a real V2 row as byte tokens (pko-t5's own tokenizer is not in ../shared/data; byte
// ids are valid pko-t5 ids, and the step's cost depends on the lengths, not on which ids), prepared
// into a data cache and trained by the workers' step (ZeroTrainer, one rank).
test('pko-t5-base shape: build and one training step (512/64 tokens, batch 1)', async () => {
  const tok = new ByteTokenizer();
  const prefix = resolveRules('v4').input_prefix;
  // 511 + eos input tokens and 63 + eos label tokens: the first row whose texts can be cut between
  // characters at exactly those byte counts (a Hangul syllable is 3 bytes, so many cuts cannot).
  const sample = readFileSync(join(sharedDataDir(), 'seed-v2-gpt4.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { title_content: string; keyphrases: string })
    .map((r) => ({ title_content: firstBytes(r.title_content, 511 - utf8.encode(prefix).length), keyphrases: firstBytes(r.keyphrases, 63) }))
    .find((r) => r.title_content !== undefined && r.keyphrases !== undefined);
  assert.ok(sample, 'no row of seed-v2-gpt4.jsonl can be cut to 511/63 bytes');
  const dir = mkdtempSync(join(tmpdir(), 'kp-pko-step-'));
  try {
    const source = join(dir, 'rows.jsonl');
    writeFileSync(source, `${JSON.stringify(sample)}\n`);
    // Rules that keep the texts as written (see train-memorise.test.ts), so the lengths stay exact.
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
    assert.deepEqual([cache.train.size, cache.train.inputLength(0), cache.train.labelLength(0)], [1, 512, 64]);

    const t0 = performance.now();
    const config = parseT5Config(PKO_T5_BASE);
    const layout = FlatLayout.fromSpecs(t5ParamSpecs(config));
    // 275,579,136 is a multiple of 16, so the one-rank flat buffer needs no padding (the trainer
    // checks the length) and no second 1.1 GB copy.
    const shard = flatShard(layout.totalSize, 1, 0);
    const params = initT5Flat(config, layout, 0);
    const engine = new LocalBlockEngine(await BlockEngine.create(new T5Family(config), { intraOpThreads: 2, dropout: true, checkpointing: true }));
    const built = performance.now();
    const before = params.slice(0, 1000);
    const collective = new RingCollective(inProcessTransports(1)[0]!);
    try {
      const trainer = new ZeroTrainer({
        engine, layout, shard, params, policy: SHARDING_POLICIES[0], seed: 0, maxGradNorm: 1.0,
        adamw: parseAdamWOptions({ weight_decay: 0.01 }),
        schedule: lrSchedule(parseLrScheduleOptions({ learning_rate: 3e-6, lr_scheduler_type: 'linear' }), 10),
        sampler: new DistributedSampler({ size: 1, seed: 0, perDeviceBatch: 1, gradAccum: 1, world: 1 }),
        train: cache.train, padId: tok.padId,
        // One rank: the collectives return at once and the scalar all-reduce is the identity.
        collective, scalars: async (_key, values) => values,
      });
      const report = await trainer.step(0, 0, 0);
      const stepped = performance.now();
      const rssGiB = process.resourceUsage().maxRSS / 1024 ** 2;
      console.log(
        `pko-t5-base: ${layout.totalSize} params; graph+sessions ${((built - t0) / 1000).toFixed(1)} s; ` +
          `one step (F+B with dropout + clip + AdamW) ${((stepped - built) / 1000).toFixed(1)} s; loss ${report.globalLoss.toFixed(3)}; ` +
          `grad norm ${report.gradNorm.toFixed(2)}; peak RSS ${rssGiB.toFixed(2)} GiB`,
      );
      // 2 x 50358 x 768 (shared, lm_head) + 12 encoder + 12 decoder layers of d_model 768, d_ff 2048.
      assert.equal(layout.totalSize, 275_579_136);
      assert.ok(Number.isFinite(report.globalLoss) && report.globalLoss > 0);
      assert.equal(report.globalTokens, 64);
      assert.ok(params.slice(0, 1000).some((x, i) => x !== before[i]), 'the step changed the parameters');
    } finally {
      await collective.close();
      await engine.release();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
