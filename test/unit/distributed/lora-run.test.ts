import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelFamily, resolveModelSpec } from '../../../shared/models/model-spec.js';
import { readPeftAdapter, type PeftAdapter } from '../../../shared/weights/peft-adapter.js';
import { runToExit } from '../../helpers/kp-coord-process.js';
import { REPO_ROOT } from '../../helpers/sample-cache.js';

// Real runs of `kp-coord start` with LoRA ([Note: LoRA]): worker processes over gRPC train only the
// adapters of a frozen base (neox-tiny, and t5-tiny with PEFT's T5 targets q and v), lora_dropout on.
// Global batch 8 every time, one intra-op thread per worker. Expected, as for full fine-tuning
// (test/unit/zero): the same world size at stages 0 and 2 gives the same bits (same sums in the same
// order); across world sizes and at stage 3 only float32 summation order differs, so adapters agree
// to 1e-6 of their largest value (observed ~1e-7 for full models). The final folder is a PEFT
// adapter: only adapter tensors, PEFT names, and B has moved off its zero init.

const TOKEN = 'a-test-token-of-enough-length';

function writeConfig(dir: string, model: string, targets: readonly string[]): string {
  const file = join(dir, `${model.replace(/[^a-z0-9]/gu, '-')}.yaml`);
  writeFileSync(file, [
    `model: ${model}`,
    'seed: 5',
    'data:',
    `  train_file: ${join(REPO_ROOT, 'shared/datasets/ko-news-sample.jsonl')}`,
    '  preset: embedded-sample',
    'tokenizer: builtin',
    'lora:',
    '  r: 4',
    '  lora_alpha: 16',
    '  lora_dropout: 0.1',
    `  target_modules: [${targets.join(', ')}]`,
    'learning_rate: 1.0e-2',
    'lr_scheduler_type: constant',
    'max_steps: 2',
    'save_strategy: "no"',
    'eval_strategy: "no"',
    'predict_with_generate: false',
    'gradient_checkpointing: true',
    '',
  ].join('\n'));
  return file;
}

async function start(config: string, out: string, args: readonly string[]): Promise<PeftAdapter> {
  const r = await runToExit(['start', '--config', config, '--set', `output_dir=${out}`, '--threads-per-worker', '1', ...args], {
    timeoutMs: 240_000,
    env: { ...process.env, KPCOORD_TOKEN: TOKEN },
  });
  assert.equal(r.code, 0, `kp-coord start failed:\n${r.output}`);
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { steps: number };
  assert.equal(summary.steps, 2);
  return readPeftAdapter(join(out, 'final'));
}

function diff(a: PeftAdapter, b: PeftAdapter): { worst: number; max: number } {
  assert.deepEqual([...b.tensors.keys()], [...a.tensors.keys()]);
  let worst = 0;
  let max = 0;
  for (const [name, t] of a.tensors) {
    const u = b.tensors.get(name)!;
    for (let i = 0; i < t.data.length; i++) {
      worst = Math.max(worst, Math.abs(t.data[i]! - u.data[i]!));
      max = Math.max(max, Math.abs(t.data[i]!));
    }
  }
  return { worst, max };
}

const STAGE3 = ['--set', 'zero_optimization.stage=3', '--set', 'zero_optimization.stage3_param_persistence_threshold=0', '--set', 'zero_optimization.stage3_prefetch_bucket_size=0', '--set', 'zero_optimization.stage3_max_reuse_distance=0'];

for (const family of [
  { model: 'preset:neox-tiny', targets: ['query_key_value', 'dense_4h_to_h'], prefix: 'base_model.model.gpt_neox.layers.0.attention.query_key_value.lora_A.weight', taskType: 'CAUSAL_LM' },
  { model: 'preset:t5-tiny', targets: ['q', 'v'], prefix: 'base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight', taskType: 'SEQ_2_SEQ_LM' },
]) {
  test(`LoRA on ${family.model}: 1 and 2 worker processes at ZeRO stages 0, 2 and 3 train the same adapters`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kp-lora-'));
    try {
      const config = writeConfig(dir, family.model, family.targets);
      const runs = [
        { name: 'n1-s0', args: ['--workers', '1', '--set', 'per_device_train_batch_size=4', '--set', 'gradient_accumulation_steps=2', '--set', 'zero_optimization.stage=0'] },
        { name: 'n2-s0', args: ['--workers', '2', '--set', 'per_device_train_batch_size=4', '--set', 'gradient_accumulation_steps=1', '--set', 'zero_optimization.stage=0'] },
        { name: 'n2-s2', args: ['--workers', '2', '--set', 'per_device_train_batch_size=4', '--set', 'gradient_accumulation_steps=1', '--set', 'zero_optimization.stage=2'] },
        { name: 'n2-s3', args: ['--workers', '2', '--set', 'per_device_train_batch_size=4', '--set', 'gradient_accumulation_steps=1', ...STAGE3] },
      ];
      const adapters: PeftAdapter[] = [];
      for (const r of runs) adapters.push(await start(config, join(dir, r.name), r.args));
      const [one, s0, s2, s3] = adapters as [PeftAdapter, PeftAdapter, PeftAdapter, PeftAdapter];

      // A PEFT adapter folder: the adapters only, under PEFT's names, with the run's settings.
      const spec = resolveModelSpec(family.model);
      const lora = { r: 4, alpha: 16, dropout: 0.1, targetModules: family.targets };
      const expected = modelFamily({ ...spec, lora }).paramSpecs();
      assert.deepEqual([...one.tensors.keys()], expected.map((s) => s.name));
      assert.equal([...one.tensors.keys()][0], family.prefix);
      assert.equal(one.config.r, 4);
      assert.equal(one.config.lora_alpha, 16);
      assert.equal(one.config.task_type, family.taskType);
      assert.deepEqual(one.config.target_modules, family.targets);
      // B starts at zero (PEFT's init); two steps at lr 1e-2 move it.
      const b = [...one.tensors].filter(([name]) => name.endsWith('.lora_B.weight'));
      assert.ok(b.every(([, t]) => t.data.some((x) => x !== 0)), 'a lora_B stayed at its zero init');

      assert.deepEqual(s2.tensors, s0.tensors, 'stage 2 differs from stage 0 at the same world size');
      for (const [name, other] of [['n2-s0', s0], ['n2-s3', s3]] as const) {
        const { worst, max } = diff(one, other);
        assert.ok(worst <= 1e-6 * max, `${name}: adapters differ from 1 worker by ${worst} (max ${max})`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
