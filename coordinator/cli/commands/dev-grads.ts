import type { Argv } from 'yargs';
import { rootLogger } from '../../../shared/log.js';
import { readBatchJson } from '../../../shared/models/batch-json.js';
import { loadHfModel } from '../../../shared/weights/hf-checkpoint.js';
import { writeSafetensors, type WritableTensor } from '../../../shared/weights/safetensors.js';
import { T5Engine } from '../../../worker/engine/t5-engine.js';

// `kp-coord dev grads`: the loss sum, token count and gradient of every parameter for one batch,
// dropout off, under Hugging Face names — for checking kp-coord against another implementation.

const log = rootLogger.child({ cmd: 'dev grads' });

export function registerDevGrads(cli: Argv): Argv {
  return cli.command(
    'grads',
    'Dump loss_sum, token_count and the gradient of every parameter for one batch (dropout off) as safetensors',
    (y) =>
      y
        .option('model', { type: 'string', demandOption: true, describe: 'Model directory (config.json + model.safetensors)' })
        .option('batch', { type: 'string', demandOption: true, describe: 'BATCH.json: {"input_ids": [[..]], "attention_mask": [[..]], "labels": [[..]]}' })
        .option('out', { type: 'string', demandOption: true, describe: 'OUT.safetensors to write (F32, HF names)' })
        .option('precision', { choices: ['float32', 'float64'] as const, default: 'float32' as const, describe: 'Compute dtype (float64 for tight comparisons; the file is F32 either way)' })
        .option('threads', { type: 'number', default: 2, describe: 'onnxruntime intra-op threads' })
        .example('$0 dev grads --model tiny/ --batch batch.json --out grads.safetensors', ''),
    async (a) => {
      const started = performance.now();
      const model = await loadHfModel(a.model);
      const batch = readBatchJson(a.batch);
      const engine = await T5Engine.create(model.config, { dtype: a.precision, intraOpThreads: a.threads, dropout: false });
      try {
        const params = a.precision === 'float32' ? model.flat : Float64Array.from(model.flat);
        const grad = a.precision === 'float32' ? new Float32Array(engine.paramCount) : new Float64Array(engine.paramCount);
        const { lossSum, tokenCount } = await engine.forwardBackward(params, grad, batch);
        const grad32 = grad instanceof Float32Array ? grad : Float32Array.from(grad);
        const tensors: WritableTensor[] = [
          { name: 'loss_sum', dtype: 'F32', shape: [], data: Float32Array.of(lossSum) },
          { name: 'token_count', dtype: 'F32', shape: [], data: Float32Array.of(tokenCount) },
          ...model.layout.params.map((p) => ({ name: p.name, dtype: 'F32' as const, shape: p.shape, data: model.layout.view(grad32, p.name) })),
        ];
        await writeSafetensors(a.out, tensors, { format: 'pt', producer: 'kp-coord dev grads', precision: a.precision });
        log.info({ out: a.out, lossSum, tokenCount, seconds: (performance.now() - started) / 1000 }, 'wrote gradients');
        process.stdout.write(`${JSON.stringify({ out: a.out, loss_sum: lossSum, token_count: tokenCount, tensors: tensors.length })}\n`);
      } finally {
        await engine.release();
      }
    },
  );
}
