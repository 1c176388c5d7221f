import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { readVerifiedManifest } from '../../shared/checkpoint/checkpoint-manifest.js';
import { openDataCache } from '../../shared/data/data-cache.js';
import { runToExit } from '../helpers/kp-coord-process.js';
import { sharedDataDir } from './shared-data.js';

// The team's decoder-only recipe end to end on their data and tokenizer, model shrunk: a tiny
// GPT-NeoX with polyglot-ko's vocabulary (30080 rows), the V2 seed articles (cut to 300 characters so
// a step takes seconds), the polyglot-ko tokenizer with the two prefixes added as tokens (ids 30006
// and 30007, so the embeddings resize to len(tokenizer) = 30008 as the team's resize_token_embeddings
// did), LoRA r 8 / alpha 32 / dropout 0.1 on query_key_value, 2 workers at ZeRO stage 3, then the
// eval split decoded (KV cache, greedy) with the adapter merged in: Korean text, no replacement
// characters, the prompt and prefixes stripped.

const DATA = sharedDataDir();
const TOKEN = 'a-test-token-of-enough-length';

test('polyglot-ko tokenizer + added prefixes + tiny NeoX with LoRA: 2 workers train, checkpoint and decode Korean', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-neox-real-'));
  try {
    const rows = readFileSync(join(DATA, 'seed-v2-gpt4.jsonl'), 'utf8').split('\n').filter((l) => l !== '').slice(0, 60).map((l) => {
      const r = JSON.parse(l) as { title_content: string; keyphrases: string };
      return JSON.stringify({ title_content: r.title_content.slice(0, 300), keyphrases: r.keyphrases });
    });
    writeFileSync(join(dir, 'train.jsonl'), `${rows.join('\n')}\n`);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({
      model_type: 'gpt_neox', vocab_size: 30080, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 64,
      rotary_pct: 0.5, rotary_emb_base: 10000, max_position_embeddings: 2048, layer_norm_eps: 1e-5, use_parallel_residual: true,
      hidden_act: 'gelu', tie_word_embeddings: false, bos_token_id: 0, eos_token_id: 2,
    }));
    const init = await runToExit(['dev', 'init-model', '--config', join(dir, 'config.json'), '--out', join(dir, 'base'), '--seed', '1'], { timeoutMs: 60_000 });
    assert.equal(init.code, 0, init.output);
    const cacheDir = join(dir, 'cache');
    const prepared = await runToExit(['data', 'prepare', '--input', join(dir, 'train.jsonl'), '--tokenizer', join(DATA, 'polyglot-ko-tokenizer.json'), '--out', cacheDir,
      '--layout', 'causal', '--prefix-tokens', 'added', '--keyphrase-separator', ',', '--min-input-tokens', 'none'], { timeoutMs: 120_000 });
    assert.equal(prepared.code, 0, prepared.output);
    writeFileSync(join(dir, 'run.yaml'), [
      `model: ${join(dir, 'base')}`,
      'seed: 3',
      `data: ${cacheDir}`,
      'lora: { r: 8, lora_alpha: 32, lora_dropout: 0.1, target_modules: [query_key_value] }',
      'per_device_train_batch_size: 2',
      'per_device_eval_batch_size: 2',
      'learning_rate: 1.0e-3',
      'max_steps: 2',
      'save_strategy: steps',
      'save_steps: 2',
      'eval_strategy: "no"',
      'predict_with_generate: true',
      'generation_max_length: 8',
      'zero_optimization: { stage: 3, stage3_param_persistence_threshold: 0 }',
      '',
    ].join('\n'));
    const out = join(dir, 'run');
    const run = await runToExit(['start', '--workers', '2', '--config', join(dir, 'run.yaml'), '--set', `output_dir=${out}`, '--threads-per-worker', '1'], { timeoutMs: 600_000, env: { ...process.env, KPCOORD_TOKEN: TOKEN } });
    assert.equal(run.code, 0, run.output);

    const cache = openDataCache(cacheDir);
    assert.deepEqual(cache.manifest.causal?.added_tokens.map((t) => [t.content, t.id]), [['generate keyphrases:', 30006], ['keyphrases generated:', 30007]]);
    const manifest = await readVerifiedManifest(join(out, 'checkpoint-2'));
    assert.equal(manifest.vocab_size, 30008);
    assert.equal(manifest.lora?.r, 8);
    const adapter = JSON.parse(readFileSync(join(out, 'final', 'adapter_config.json'), 'utf8')) as { task_type: string; base_model_name_or_path: string };
    assert.equal(adapter.task_type, 'CAUSAL_LM');
    assert.equal(adapter.base_model_name_or_path, join(dir, 'base'));

    const predictions = readFileSync(join(out, 'eval_predictions.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prediction: string; label: string; source: string });
    assert.equal(predictions.length, cache.eval!.size);
    for (const p of predictions) {
      assert.ok(!p.prediction.includes('\uFFFD') && !p.prediction.includes('keyphrases generated'), p.prediction);
      assert.match(p.label, /[\uAC00-\uD7A3]/u); // gold labels are Korean
      assert.ok(!p.source.startsWith('generate keyphrases'), p.source);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
