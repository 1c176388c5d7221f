// "Did you mean" for unknown config keys: a typo of a known key (edit distance), or a name from a
// neighbouring vocabulary (DeepSpeed's, PyTorch's, older transformers') whose kp-coord key differs.

/**
 * Names people bring from elsewhere -> the key kp-coord reads. Checked before the edit distance,
 * so `lr` suggests `learning_rate` although the strings share little.
 */
const KNOWN_ALIASES: Readonly<Record<string, string>> = Object.freeze({
  lr: 'learning_rate',
  batch_size: 'per_device_train_batch_size',
  train_batch_size: 'per_device_train_batch_size',
  per_gpu_train_batch_size: 'per_device_train_batch_size',
  train_micro_batch_size_per_gpu: 'per_device_train_batch_size',
  per_gpu_eval_batch_size: 'per_device_eval_batch_size',
  eval_batch_size: 'per_device_eval_batch_size',
  epochs: 'num_train_epochs',
  num_epochs: 'num_train_epochs',
  grad_accum: 'gradient_accumulation_steps',
  gradient_clipping: 'max_grad_norm',
  clip_grad_norm: 'max_grad_norm',
  betas: 'adam_beta1 and adam_beta2',
  eps: 'adam_epsilon',
  scheduler: 'lr_scheduler_type',
  lr_scheduler: 'lr_scheduler_type',
  warmup: 'warmup_steps or warmup_ratio',
  zero_stage: 'zero_optimization.stage',
  zero: 'zero_optimization',
  deepspeed_config: 'deepspeed',
  model_name_or_path: 'model',
  train_file: 'data.train_file',
  eval_file: 'data.eval_file',
  validation_file: 'data.eval_file',
  patience: 'early_stopping_patience',
  num_workers: 'workers',
  world_size: 'workers',
  // PEFT and TRL names written at the top level.
  peft: 'lora',
  peft_config: 'lora',
  lora_config: 'lora',
  lora_r: 'lora.r',
  lora_rank: 'lora.r',
  lora_alpha: 'lora.lora_alpha',
  lora_dropout: 'lora.lora_dropout',
  target_modules: 'lora.target_modules',
  max_seq_length: 'max_sequence_tokens (a `kp-coord data prepare` rule)',
  loss_on: 'completion_only_loss',
  train_on_inputs: 'completion_only_loss (its opposite)',
  // DeepSpeed's pre-0.4 offload switches.
  cpu_offload: 'offload_optimizer.device: cpu',
  cpu_offload_params: 'offload_param.device: cpu',
  cpu_offload_param: 'offload_param.device: cpu',
});

/** Levenshtein distance (insert, delete, substitute; each costs 1). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/**
 * The known key `unknown` most likely stands for, or undefined. A typo counts when it is within a
 * third of the key's length (at least 1, at most 3 edits), so `learning_rat` -> `learning_rate`
 * but `seed` does not suggest `fp16`.
 */
export function suggestKey(unknown: string, known: readonly string[]): string | undefined {
  const lower = unknown.toLowerCase();
  const alias = KNOWN_ALIASES[lower];
  if (alias !== undefined && !known.includes(lower)) return alias;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(lower, k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  const limit = Math.min(3, Math.max(1, Math.floor(unknown.length / 3)));
  return bestDistance <= limit ? best : undefined;
}
