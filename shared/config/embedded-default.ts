import { EMBEDDED_SAMPLE_FILE, type RunConfigInput } from './run-config.js';

// The run `kp-coord start --workers 2` makes with no config file: the byte-level t5-small-bytes
// preset (1.25 M parameters, 3+3 layers, d_model 128) on the shipped sample set (110 rows; the
// embedded-sample rules keep all of them and draw 22 for eval, leaving 88 to train on), sized so
// two workers on two CPU cores finish in a few minutes with a clearly falling loss.
//
// Measured on this machine's kind (2 cores), with one process doing the same math as
// 2 workers x 4 samples (global batch 8, dropout on, first 88 rows to train, last 22 to evaluate):
// an optimizer step of 8 samples (inputs ~810 byte tokens, targets ~146) took about 2.5 s, so an
// epoch of 11 steps took 27-30 s on an otherwise idle machine. Eval loss (token mean) by epoch:
//   lr 1e-3: 7.23, 4.27, 3.84, 3.62, 3.42
//   lr 3e-3: 6.88, 3.77, 3.44, 3.22, 3.12   <- chosen: clearly falling, no instability seen
// (the first steps' training loss is ~20: HF's init gives the untied LM head unit-variance weights).

/** A fresh copy each call (a config as written; resolve it with resolveRunConfig). */
export function embeddedDefaultConfig(): RunConfigInput {
  return {
    output_dir: 'runs/kp-coord',
    seed: 42,
    model: 'preset:t5-small-bytes',
    // T5's own pre-training dropout; on 88 samples over several epochs it curbs memorisation.
    dropout_rate: 0.1,
    data: { train_file: EMBEDDED_SAMPLE_FILE, preset: 'embedded-sample' },
    tokenizer: 'builtin',
    // 4 per worker x 2 workers = a global batch of 8: 11 steps an epoch, enough updates per epoch
    // for the curve to show, and small enough that a step stays a few seconds on one core each.
    // Taken as 4 micro-batches of 1: attention memory grows with batch x length^2 (articles reach
    // 939 bytes), and whole runs peaked per worker at 1.45 GB with 4 x 1, 1.03-1.08 GB with 2 x 2
    // and 0.83 GB with 1 x 4 (3.70, 3.74 and 3.03 samples/s; bench/zero section 8). The update is
    // the same up to float32 summation order (gradients are sums over the global batch).
    per_device_train_batch_size: 1,
    // Evaluation at the training batch: attention memory grows with batch x length^2, and an
    // evaluation's sessions are alive beside training's while it runs.
    per_device_eval_batch_size: 1,
    gradient_accumulation_steps: 4,
    // A model this small trained from scratch takes a far larger rate than pko-t5-base fine-tuning
    // (3e-6 per 8 samples). 3e-3 beat 1e-3 in the measurement above; clipping at 1.0 guards it. A
    // short warm-up (10% of the steps) keeps the first updates, taken with Adam's noisy early
    // second moments, from overshooting while the LM head's large initial logits settle.
    learning_rate: 3e-3,
    lr_scheduler_type: 'linear',
    warmup_ratio: 0.1,
    // The team's AdamW settings (DESIGN, reference workload).
    weight_decay: 0.01,
    adam_beta1: 0.9,
    adam_beta2: 0.999,
    adam_epsilon: 1e-8,
    max_grad_norm: 1.0,
    // 5 epochs = 55 steps: about three minutes for two workers on two cores, eval loss ~7 -> ~3.1.
    num_train_epochs: 5,
    logging_steps: 1,
    // The team's lifecycle: evaluate and save each epoch, keep the best, stop after 3 evaluations
    // without improvement, then decode the eval split with the best model and score it (a few
    // seconds for 22 articles; the scores of a model this small trained for minutes are near 0 —
    // it shows the pipeline, not quality).
    eval_strategy: 'epoch',
    save_strategy: 'epoch',
    save_total_limit: 2,
    load_best_model_at_end: true,
    metric_for_best_model: 'eval_loss',
    early_stopping_patience: 3,
    predict_with_generate: true,
    generation_max_length: 64,
    generation_num_beams: 1,
    // ZeRO-2: gradients and optimizer states partitioned, the stage the design builds first.
    // Optimizer offload is left at "none": on the CPU execution provider the state is in host
    // memory either way.
    // Each gradient bucket (HF's "auto": d_model^2 elements, so one per block here) is reduce-scattered
    // as soon as the backward finishes it: no rank holds a whole-model gradient.
    zero_optimization: { stage: 2, reduce_bucket_size: 'auto' },
    // Activation checkpointing: the forward keeps only each block's input. At 835 input tokens a
    // batch's attention probabilities alone are 45 MB per layer; kept for the backward they made
    // the worker peak at 3.3 GB (bench/zero: peak RSS with it on and off).
    gradient_checkpointing: true,
    workers: 2,
  };
}
