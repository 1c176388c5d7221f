import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { stringify } from 'yaml';
import { loadRunConfig, resolveRunConfig } from '../../../shared/config/resolve-run-config.js';
import { InputFileError } from '../../../shared/errors.js';
import { TrainPlanSchema } from '../../../shared/plan/train-plan.js';

// LoRA under PEFT's names, the decoder-only options, and the model family read from config.json.

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kp-config-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A folder with a GPT-NeoX config.json and a data file (paths are checked, not read). */
function neoxDir(t: { after(fn: () => void): void }): string {
  const dir = scratch(t);
  mkdirSync(join(dir, 'neox'));
  writeFileSync(join(dir, 'neox', 'config.json'), JSON.stringify({ model_type: 'gpt_neox', hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 2, vocab_size: 300 }));
  writeFileSync(join(dir, 'train.jsonl'), '');
  return dir;
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof InputFileError, String(e));
    return e.message;
  }
  assert.fail('expected an InputFileError');
}

test('lora: {} is PEFT LoraConfig\'s defaults with the family\'s target modules; absent is full fine-tuning', () => {
  const t5 = resolveRunConfig({ lora: {} });
  assert.equal(t5.modelType, 't5');
  assert.deepEqual(t5.lora, { r: 8, lora_alpha: 8, lora_dropout: 0, target_modules: ['q', 'v'], scaling: 1 });
  assert.deepEqual(t5.config.lora?.target_modules, ['q', 'v']);
  assert.equal(t5.causal, null);
  assert.deepEqual(t5.sequence, { layout: 'seq2seq', prefixTokens: 'text' });
  // The workers build adapters: nothing is listed as not acted on.
  assert.equal(t5.ignored.find((i) => i.key === 'lora'), undefined);
  assert.deepEqual(resolveRunConfig({}).ignored, []);
  assert.equal(resolveRunConfig({}).lora, null);
  assert.equal(resolveRunConfig({ lora: null }).lora, null);
  assert.equal(resolveRunConfig({}).config.completion_only_loss, false);
  // The plan takes the resolved values as they are.
  assert.deepEqual(TrainPlanSchema.shape.lora.parse(t5.lora), t5.lora);
  assert.equal(TrainPlanSchema.shape.causal.parse(t5.causal), null);
});

test('a GPT-NeoX model folder: causal layout, query_key_value by default, rslora scaling, hidden_size sizes the auto buckets', (t) => {
  const dir = neoxDir(t);
  const r = resolveRunConfig(
    {
      model: 'neox',
      data: { train_file: 'train.jsonl', prefix_tokens: 'added' },
      lora: { r: 16, lora_alpha: 32, lora_dropout: 0.05, use_rslora: true, task_type: 'CAUSAL_LM', bias: 'none' },
      completion_only_loss: true,
      zero_optimization: { stage: 2, reduce_bucket_size: 'auto' },
    },
    { baseDir: dir },
  );
  assert.equal(r.modelType, 'gpt_neox');
  assert.deepEqual(r.lora, { r: 16, lora_alpha: 32, lora_dropout: 0.05, target_modules: ['query_key_value'], scaling: 8 });
  assert.deepEqual(r.causal, { completion_only_loss: true });
  assert.deepEqual(r.sequence, { layout: 'causal', prefixTokens: 'added' });
  assert.equal(r.config.zero_optimization.reduce_bucket_size, 64 * 64);
  assert.deepEqual(TrainPlanSchema.shape.causal.parse(r.causal), { completion_only_loss: true });
  const all = resolveRunConfig({ model: 'neox', lora: { target_modules: ['query_key_value', 'dense', 'dense_h_to_4h', 'dense_4h_to_h'] } }, { baseDir: dir });
  assert.deepEqual(all.lora?.target_modules, ['query_key_value', 'dense', 'dense_h_to_4h', 'dense_4h_to_h']);
  assert.deepEqual(all.causal, { completion_only_loss: false });
});

test('what kp-coord cannot do is refused with the reason, each with its line; typos get "did you mean"', (t) => {
  const dir = scratch(t);
  const file = join(dir, 'run.yaml');
  writeFileSync(
    file,
    [
      'lora:',
      '  r: 0',
      '  lora_aplha: 16',
      '  bias: all',
      '  fan_in_fan_out: true',
      '  init_lora_weights: gaussian',
      '  use_dora: true',
      '  target_modules: all-linear',
      '  modules_to_save: [lm_head]',
      '  task_type: CAUSAL_LM',
      'completion_only_loss: true',
      'data: { train_file: shared/datasets/ko-news-sample.jsonl, prefix_tokens: added }',
      '',
    ].join('\n'),
  );
  const repo = join(import.meta.dirname, '..', '..', '..', '..');
  const m = messageOf(() => loadRunConfig(file, { baseDir: repo }));
  for (const line of [
    'line 2: lora.r: must be >= 1 (got 0)',
    'line 3: lora.lora_aplha: unknown key; did you mean lora_alpha?',
    'line 4: lora.bias: only "none" is supported: kp-coord trains the LoRA matrices only, not the biases ("all", "lora_only") (got "all")',
    'line 5: lora.fan_in_fan_out: only false is supported: true is for Conv1D weights (GPT-2); GPT-NeoX and T5 use nn.Linear (got true)',
    'line 6: lora.init_lora_weights: only true is supported',
    'line 7: lora.use_dora: only false is supported: DoRA is not implemented (got true)',
    'line 8: lora.target_modules: expected a list of module names, e.g. [query_key_value] (PEFT\'s regex string and "all-linear" are not supported) (got "all-linear")',
    'line 9: lora.modules_to_save: must be empty or null',
    'line 11: completion_only_loss: is for decoder-only models; t5 scores only its labels anyway',
    'line 12: data.prefix_tokens: "added" is for decoder-only models',
  ]) {
    assert.ok(m.includes(line), `missing: ${line}\nin:\n${m}`);
  }
  // Family checks need the other fields valid: module names and task type against T5.
  const f = messageOf(() => resolveRunConfig({ lora: { target_modules: ['q', 'query_key_value'], task_type: 'CAUSAL_LM' } }));
  assert.match(f, /lora\.target_modules: "query_key_value" is not a linear module of t5; known: q, k, v, o, wi, wi_0, wi_1, wo/u);
  assert.match(f, /lora\.task_type: CAUSAL_LM does not match the model \(t5 is SEQ_2_SEQ_LM\)/u);
});

test('PEFT and TRL names at the top level point to where they belong', () => {
  const m = messageOf(() => resolveRunConfig({ lora_r: 8, target_modules: ['q'], peft: {}, max_seq_length: 512 }));
  assert.match(m, /lora_r: unknown key; did you mean lora\.r\?/u);
  assert.match(m, /target_modules: unknown key; did you mean lora\.target_modules\?/u);
  assert.match(m, /peft: unknown key; did you mean lora\?/u);
  assert.match(m, /max_seq_length: unknown key; did you mean max_sequence_tokens \(a `kp-coord data prepare` rule\)\?/u);
});

test('a model folder of another family is refused naming model_type', (t) => {
  const dir = scratch(t);
  mkdirSync(join(dir, 'llama'));
  writeFileSync(join(dir, 'llama', 'config.json'), JSON.stringify({ model_type: 'llama', hidden_size: 64 }));
  assert.match(messageOf(() => resolveRunConfig({ model: 'llama' }, { baseDir: dir })), /model: not a model: .*config\.json: field model_type: "llama" is not a family kp-coord trains \(t5, gpt_neox, bart\)/u);
});

test('round trip: a resolved config with lora, written as YAML and read back, resolves to itself', (t) => {
  const dir = neoxDir(t);
  const first = resolveRunConfig({ model: 'neox', data: { train_file: 'train.jsonl', prefix_tokens: 'added' }, lora: { r: 4, lora_dropout: 0.1 }, completion_only_loss: true }, { baseDir: dir });
  const file = join(dir, 'resolved.yaml');
  writeFileSync(file, stringify(first.config));
  const again = loadRunConfig(file, { baseDir: dir });
  assert.deepEqual(again.config, first.config);
  assert.deepEqual([again.lora, again.causal, again.sequence], [first.lora, first.causal, first.sequence]);
});
