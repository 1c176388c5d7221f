import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDataCache } from '../../../shared/data/data-cache.js';
import { NEOX_PRESETS, parseNeoXConfig } from '../../../shared/models/neox-config.js';
import { neoxParamSpecs } from '../../../shared/models/neox-params.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { loadHfParams } from '../../../shared/weights/hf-checkpoint.js';
import { initFlatRange } from '../../../shared/weights/init.js';
import { runToExit } from '../../helpers/kp-coord-process.js';
import { REPO_ROOT } from '../../helpers/sample-cache.js';

// GPT-NeoX fully fine-tuned by real `kp-coord start` runs (neox-tiny, builtin byte tokenizer), the
// team's later recipe: the two prompt prefixes added to the tokenizer as new tokens, so the
// embeddings grow from 259 to 261 rows (HF resize_token_embeddings, mean of the old rows), loss on
// the target only (completion_only_loss). 1 worker against 2 at stages 2 and 3: only float32
// summation order differs, so weights agree to 1e-6 of the largest (test/unit/zero's rule).

const TOKEN = 'a-test-token-of-enough-length';

async function start(config: string, out: string, args: readonly string[]): Promise<void> {
  const r = await runToExit(['start', '--config', config, '--set', `output_dir=${out}`, '--threads-per-worker', '1', ...args], { timeoutMs: 240_000, env: { ...process.env, KPCOORD_TOKEN: TOKEN } });
  assert.equal(r.code, 0, `kp-coord start failed:\n${r.output}`);
}

test('GPT-NeoX with added prefix tokens: embeddings grown, 1 and 2 workers (stages 2, 3) reach the same weights', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-neox-'));
  try {
    const config = join(dir, 'neox.yaml');
    writeFileSync(config, [
      'model: preset:neox-tiny',
      'seed: 9',
      'data:',
      `  train_file: ${join(REPO_ROOT, 'shared/datasets/ko-news-sample.jsonl')}`,
      '  preset: embedded-sample',
      '  prefix_tokens: added',
      'tokenizer: builtin',
      'completion_only_loss: true',
      'dropout_rate: 0.1',
      'learning_rate: 1.0e-3',
      'lr_scheduler_type: constant',
      'max_steps: 2',
      'save_strategy: "no"',
      'eval_strategy: "no"',
      'predict_with_generate: false',
      '',
    ].join('\n'));
    const runs = [
      { name: 'n1', args: ['--workers', '1', '--set', 'per_device_train_batch_size=4', '--set', 'gradient_accumulation_steps=2', '--set', 'zero_optimization.stage=0'] },
      { name: 'n2-s2', args: ['--workers', '2', '--set', 'per_device_train_batch_size=4', '--set', 'gradient_accumulation_steps=1', '--set', 'zero_optimization.stage=2', '--set', 'gradient_checkpointing=true'] },
      { name: 'n2-s3', args: ['--workers', '2', '--set', 'per_device_train_batch_size=4', '--set', 'gradient_accumulation_steps=1', '--set', 'zero_optimization.stage=3', '--set', 'zero_optimization.stage3_param_persistence_threshold=0'] },
    ];
    for (const r of runs) await start(config, join(dir, r.name), r.args);

    // The cache added two tokens after the byte vocabulary; the saved model holds 261 rows.
    const cache = openDataCache(join(dir, 'n1', 'data-cache'));
    assert.deepEqual(cache.manifest.causal?.added_tokens.map((t) => t.id), [259, 260]);
    const saved = JSON.parse(readFileSync(join(dir, 'n1', 'final', 'config.json'), 'utf8')) as { vocab_size: number; model_type: string };
    assert.equal(saved.model_type, 'gpt_neox');
    assert.equal(saved.vocab_size, 261);
    const grown = parseNeoXConfig({ ...NEOX_PRESETS['neox-tiny'], vocab_size: 261 });
    const layout = FlatLayout.fromSpecs(neoxParamSpecs(grown));
    const load = (name: string) => loadHfParams(join(dir, name, 'final'), layout, { model: 'neox-tiny at 261 ids' });
    const [one, s2, s3] = await Promise.all(runs.map((r) => load(r.name)));
    for (const [name, w] of [['n2-s2', s2], ['n2-s3', s3]] as const) {
      let worst = 0;
      let max = 0;
      w!.forEach((x, i) => {
        worst = Math.max(worst, Math.abs(x - one![i]!));
        max = Math.max(max, Math.abs(one![i]!));
      });
      assert.ok(worst <= 1e-6 * max, `${name}: weights differ from 1 worker by ${worst} (max ${max})`);
    }

    // Old rows of embed_in started at the preset's seeded init; the two new ones at its row mean.
    // Two steps at lr 1e-3 move each element by at most ~2e-3 (Adam), far less than the rows' spread.
    const before = parseNeoXConfig({ ...NEOX_PRESETS['neox-tiny'] });
    const beforeLayout = FlatLayout.fromSpecs(neoxParamSpecs(before));
    const init = beforeLayout.view(initFlatRange(neoxParamSpecs(before), beforeLayout, 9, 0, beforeLayout.totalSize), 'gpt_neox.embed_in.weight');
    const trained = layout.view(one!, 'gpt_neox.embed_in.weight');
    const h = grown.hiddenSize;
    for (let c = 0; c < h; c++) {
      let mean = 0;
      for (let r = 0; r < 259; r++) mean += init[r * h + c]!;
      mean /= 259;
      for (const row of [259, 260]) assert.ok(Math.abs(trained[row * h + c]! - mean) <= 3e-3, `new row ${row}, column ${c}: ${trained[row * h + c]} vs mean ${mean}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
