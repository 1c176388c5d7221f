import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BART_PRESETS, parseBartConfig } from '../../../shared/models/bart-config.js';
import { BART_LOGITS_BIAS, bartCheckpointSpecs } from '../../../shared/models/bart-params.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { loadHfWeights } from '../../../shared/weights/hf-checkpoint.js';
import { readPeftAdapter, type PeftAdapter } from '../../../shared/weights/peft-adapter.js';
import { readSafetensors } from '../../../shared/weights/safetensors.js';
import { runToExit } from '../../helpers/kp-coord-process.js';
import { REPO_ROOT } from '../../helpers/sample-cache.js';

// BART (bart-tiny, builtin byte tokenizer, the shipped sample) trained by real `kp-coord start` runs:
// worker processes over gRPC, global batch 8 every time, one intra-op thread per worker, dropout on.
// 1 worker against 2 at ZeRO stages 0, 2 and 3 (full fine-tuning), and LoRA with PEFT's BART targets
// q_proj and v_proj at stage 3. As for T5 and GPT-NeoX (test/unit/zero): across world sizes only the
// float32 summation order differs, so weights agree to 1e-6 of their largest value. The final folder
// has exactly HF's BART tensors (final_logits_bias included, untrained: zeros from the preset).

const TOKEN = 'a-test-token-of-enough-length';

function writeConfig(dir: string, lora: boolean): string {
  const file = join(dir, lora ? 'bart-lora.yaml' : 'bart.yaml');
  writeFileSync(file, [
    'model: preset:bart-tiny',
    'seed: 7',
    'data:',
    `  train_file: ${join(REPO_ROOT, 'shared/datasets/ko-news-sample.jsonl')}`,
    '  preset: embedded-sample',
    'tokenizer: builtin',
    ...(lora ? ['lora:', '  r: 4', '  lora_alpha: 16', '  lora_dropout: 0.1'] : []),
    'learning_rate: 1.0e-3',
    'lr_scheduler_type: constant',
    'max_steps: 2',
    'save_strategy: "no"',
    'eval_strategy: "no"',
    'predict_with_generate: false',
    '',
  ].join('\n'));
  return file;
}

async function start(config: string, out: string, args: readonly string[]): Promise<void> {
  const r = await runToExit(['start', '--config', config, '--set', `output_dir=${out}`, '--threads-per-worker', '1', ...args], { timeoutMs: 300_000, env: { ...process.env, KPCOORD_TOKEN: TOKEN } });
  assert.equal(r.code, 0, `kp-coord start failed:\n${r.output}`);
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { steps: number };
  assert.equal(summary.steps, 2);
}

function worstOf(a: ArrayLike<number>, b: ArrayLike<number>): { worst: number; max: number } {
  let worst = 0;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    max = Math.max(max, Math.abs(a[i]!));
  }
  return { worst, max };
}

const ONE = ['--workers', '1', '--set', 'per_device_train_batch_size=4', '--set', 'gradient_accumulation_steps=2', '--set', 'zero_optimization.stage=0'];
const two = (stage: number) => [
  '--workers', '2', '--set', 'per_device_train_batch_size=4', '--set', 'gradient_accumulation_steps=1', '--set', `zero_optimization.stage=${stage}`,
  ...(stage === 3 ? ['--set', 'zero_optimization.stage3_param_persistence_threshold=0'] : []),
];

test('BART full fine-tuning: 1 and 2 workers (stages 0, 2, 3) reach the same weights; the final folder is HF\'s BART', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-bart-'));
  try {
    const config = writeConfig(dir, false);
    const runs = [
      { name: 'n1', args: ONE },
      { name: 'n2-s0', args: two(0) },
      { name: 'n2-s2', args: [...two(2), '--set', 'gradient_checkpointing=true'] },
      { name: 'n2-s3', args: two(3) },
    ];
    for (const r of runs) await start(config, join(dir, r.name), r.args);
    const bart = parseBartConfig(BART_PRESETS['bart-tiny']);
    const specs = bartCheckpointSpecs(bart);
    const file = await readSafetensors(join(dir, 'n1', 'final', 'model.safetensors'));
    assert.deepEqual([...file.tensors.keys()].sort(), specs.map((s) => s.name).sort());
    assert.ok((file.tensors.get(BART_LOGITS_BIAS)!.data as Float32Array).every((x) => x === 0), 'the buffer is not trained');
    const saved = JSON.parse(readFileSync(join(dir, 'n1', 'final', 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(saved.model_type, 'bart');
    const layout = FlatLayout.fromSpecs(specs);
    const [one, ...others] = await Promise.all(runs.map((r) => loadHfWeights(join(dir, r.name, 'final'), 'bart', layout)));
    others.forEach((w, k) => {
      const { worst, max } = worstOf(one!, w);
      assert.ok(worst <= 1e-6 * max, `${runs[k + 1]!.name}: weights differ from 1 worker by ${worst} (max ${max})`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('BART LoRA (PEFT default q_proj, v_proj): 1 and 2 workers at stage 3 train the same adapters', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-bart-lora-'));
  try {
    const config = writeConfig(dir, true);
    await start(config, join(dir, 'n1'), ONE);
    await start(config, join(dir, 'n2-s3'), two(3));
    const [a, b]: PeftAdapter[] = await Promise.all(['n1', 'n2-s3'].map((n) => readPeftAdapter(join(dir, n, 'final'))));
    assert.deepEqual(a!.config.target_modules, ['q_proj', 'v_proj']);
    assert.equal(a!.config.task_type, 'SEQ_2_SEQ_LM');
    // encoder: 2 layers x (q, v); decoder: 2 layers x (self q, v, cross q, v); A and B each
    assert.equal(a!.tensors.size, 2 * (2 * 2 + 2 * 4));
    assert.deepEqual([...b!.tensors.keys()], [...a!.tensors.keys()]);
    for (const [name, t] of a!.tensors) {
      if (name.includes('.lora_B.')) assert.ok(t.data.some((x) => x !== 0), `${name} moved off its zero init`);
      const { worst, max } = worstOf(t.data, b!.tensors.get(name)!.data);
      assert.ok(worst <= 1e-6 * max, `${name}: ${worst} (max ${max})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
