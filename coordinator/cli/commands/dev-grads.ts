import type { Argv } from 'yargs';
import { rootLogger } from '../../../shared/log.js';
import { readBatchJson } from '../../../shared/models/batch-json.js';
import { KpCoordError } from '../../../shared/errors.js';
import { modelFamily, resolveModelSpec, type ModelSpec } from '../../../shared/models/model-spec.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { loadHfModel, loadHfWeights } from '../../../shared/weights/hf-checkpoint.js';
import { readPeftAdapter } from '../../../shared/weights/peft-adapter.js';
import { BlockEngine } from '../../../worker/engine/block-engine.js';
import { writeSafetensors, type WritableTensor } from '../../../shared/weights/safetensors.js';
import { T5Engine } from '../../../worker/engine/t5-engine.js';

// `kp-coord dev grads`: the loss sum, token count and gradient of every parameter for one batch,
// dropout off, under Hugging Face names (or, with --adapter, of every LoRA adapter tensor under
// PEFT's names) — for checking kp-coord against another implementation (transformers, PEFT).

const log = rootLogger.child({ cmd: 'dev grads' });

export function registerDevGrads(cli: Argv): Argv {
  return cli.command(
    'grads',
    'Dump loss_sum, token_count and the gradient of every parameter for one batch (dropout off) as safetensors',
    (y) =>
      y
        .option('model', { type: 'string', demandOption: true, describe: 'HF model directory (config.json + safetensors): T5, GPT-NeoX or BART (model_type)' })
        .option('adapter', { type: 'string', describe: 'A PEFT LoRA adapter directory: the base is frozen and the gradients are the adapter\'s, under PEFT names' })
        .option('batch', { type: 'string', demandOption: true, describe: 'BATCH.json: {"input_ids": [[..]], "attention_mask": [[..]], "labels": [[..]]}; for GPT-NeoX labels are aligned with input_ids (-100 ignored; shifted inside, as HF)' })
        .option('out', { type: 'string', demandOption: true, describe: 'OUT.safetensors to write (F32, HF names)' })
        .option('precision', { choices: ['float32', 'float64'] as const, default: 'float32' as const, describe: 'Compute dtype (float64 for tight comparisons; the file is F32 either way)' })
        .option('threads', { type: 'number', default: 2, describe: 'onnxruntime intra-op threads' })
        .example('$0 dev grads --model tiny/ --batch batch.json --out grads.safetensors', '')
        .example('$0 dev grads --model neox/ --adapter adapter/ --batch batch.json --out lora-grads.safetensors', 'gradients of the adapter only'),
    async (a) => {
      const started = performance.now();
      const spec = resolveModelSpec(a.model);
      const batchPath = a.batch;
      const result = spec.modelType === 't5' && a.adapter === undefined
        ? await t5WholeModelGrads(a.model, batchPath, a.precision, a.threads)
        : await blockEngineGrads(a.model, spec, batchPath, a.adapter ?? null, a.precision, a.threads);
      const tensors: WritableTensor[] = [
        { name: 'loss_sum', dtype: 'F32', shape: [], data: Float32Array.of(result.lossSum) },
        { name: 'token_count', dtype: 'F32', shape: [], data: Float32Array.of(result.tokenCount) },
        ...result.layout.params.map((p) => ({ name: p.name, dtype: 'F32' as const, shape: p.shape, data: result.layout.view(result.grad, p.name) })),
      ];
      await writeSafetensors(a.out, tensors, { format: 'pt', producer: 'kp-coord dev grads', precision: a.precision });
      const { lossSum, tokenCount } = result;
      log.info({ out: a.out, lossSum, tokenCount, seconds: (performance.now() - started) / 1000 }, 'wrote gradients');
      process.stdout.write(`${JSON.stringify({ out: a.out, loss_sum: lossSum, token_count: tokenCount, tensors: tensors.length })}\n`);
    },
  );
}

interface Grads {
  readonly lossSum: number;
  readonly tokenCount: number;
  readonly layout: FlatLayout;
  readonly grad: Float32Array;
}

/** T5 without an adapter: the whole-model graph (the first release's oracle), as before. */
async function t5WholeModelGrads(dir: string, batchPath: string, precision: 'float32' | 'float64', threads: number): Promise<Grads> {
  const model = await loadHfModel(dir);
  const batch = readBatchJson(batchPath, 't5');
  const engine = await T5Engine.create(model.config, { dtype: precision, intraOpThreads: threads, dropout: false });
  try {
    const params = precision === 'float32' ? model.flat : Float64Array.from(model.flat);
    const grad = precision === 'float32' ? new Float32Array(engine.paramCount) : new Float64Array(engine.paramCount);
    const { lossSum, tokenCount } = await engine.forwardBackward(params, grad, batch);
    return { lossSum, tokenCount, layout: model.layout, grad: grad instanceof Float32Array ? grad : Float32Array.from(grad) };
  } finally {
    await engine.release();
  }
}

/**
 * GPT-NeoX, BART, or any family with a PEFT adapter: the block engine. Without an adapter, gradients
 * of every parameter under HF names (BART: the tied embedding once, under model.shared.weight, summed
 * over its three uses; none for the final_logits_bias buffer); with one, the base is frozen and the
 * gradients are the adapter's, under PEFT's names.
 */
async function blockEngineGrads(dir: string, base: ModelSpec, batchPath: string, adapterDir: string | null, precision: 'float32' | 'float64', threads: number): Promise<Grads> {
  const adapter = adapterDir ? await readPeftAdapter(adapterDir) : null;
  const targets = adapter?.config.target_modules;
  if (adapter && !Array.isArray(targets)) throw new KpCoordError(`${adapterDir}/adapter_config.json: field target_modules: a list of module names is needed (a regular expression or null is not supported)`);
  const lora = adapter ? { r: adapter.config.r, alpha: adapter.config.lora_alpha, dropout: adapter.config.lora_dropout, targetModules: [...(targets as string[])], ...(adapter.config.use_rslora ? { useRslora: true } : {}) } : null;
  const family = modelFamily({ ...base, lora });
  const layout = FlatLayout.fromSpecs(family.paramSpecs());
  // The family's frozen tensors (the base under LoRA; BART's final_logits_bias always) are fed as they are.
  const frozenSpecs = family.frozenSpecs();
  const frozen = frozenSpecs.length > 0 ? await loadHfWeights(dir, base.modelType, FlatLayout.fromSpecs(frozenSpecs)) : null;
  let trainable = adapter ? new Float32Array(0) : await loadHfWeights(dir, base.modelType, layout);
  if (adapter) {
    trainable = new Float32Array(layout.totalSize);
    const missing = layout.params.filter((p) => !adapter.tensors.has(p.name)).map((p) => p.name);
    if (missing.length > 0 || adapter.tensors.size !== layout.params.length) {
      throw new KpCoordError(`${adapterDir}: the adapter's tensors do not match its adapter_config.json on this model (missing: ${missing.slice(0, 4).join(', ') || 'none'}; ${adapter.tensors.size} stored, ${layout.params.length} expected)`);
    }
    for (const p of layout.params) {
      const t = adapter.tensors.get(p.name)!;
      if (t.shape.join(',') !== p.shape.join(',')) throw new KpCoordError(`${adapterDir}: ${p.name} has shape [${t.shape.join(', ')}], expected [${p.shape.join(', ')}]`);
      layout.view(trainable, p.name).set(t.data);
    }
  }
  const batch = readBatchJson(batchPath, base.modelType);
  const wide = (x: Float32Array) => (precision === 'float32' ? x : Float64Array.from(x));
  const engine = await BlockEngine.create(family, { dtype: precision, intraOpThreads: threads, dropout: false }, frozen ? wide(frozen) : null);
  try {
    const grad = precision === 'float32' ? new Float32Array(layout.totalSize) : new Float64Array(layout.totalSize);
    const { lossSum, tokenCount } = await engine.forwardBackward(wide(trainable), batch, undefined, (lo, _hi, g) => grad.set(g, lo));
    return { lossSum, tokenCount, layout, grad: grad instanceof Float32Array ? grad : Float32Array.from(grad) };
  } finally {
    await engine.release();
  }
}
