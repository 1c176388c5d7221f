import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Argv } from 'yargs';
import { readVerifiedManifest } from '../../../shared/checkpoint/checkpoint-manifest.js';
import { readRange } from '../../../shared/checkpoint/range-shard.js';
import { KpCoordError, OutputPathError } from '../../../shared/errors.js';
import { checkReplaceable, checkWritableParent } from '../../../shared/out-dir.js';
import { saveHfFolder } from '../../../shared/weights/hf-checkpoint.js';
import { mergedWeights, readPeftAdapter } from '../../../shared/weights/peft-adapter.js';
import { WorkerModel } from '../../../worker/worker-model.js';

// `kp-coord export`: a checkpoint (any world size, any family) as a Hugging Face model directory.
// A LoRA run's checkpoint holds only its adapter (its manifest says so): it is written as a PEFT
// adapter directory, and with --merge also as the merged model.
export function registerExport(cli: Argv): Argv {
  return cli.command(
    'export',
    'Write a checkpoint as a Hugging Face model directory (config.json + model.safetensors), or for a LoRA run a PEFT adapter directory',
    (y) =>
      y
        .option('checkpoint', { type: 'string', demandOption: true, describe: 'A checkpoint directory (OUTPUT_DIR/checkpoint-<steps>)' })
        .option('out', { type: 'string', demandOption: true, describe: 'Directory to write (must not exist, or be empty)' })
        .option('overwrite', { type: 'boolean', default: false, describe: 'Replace an existing --out that holds an exported model (config.json + model.safetensors)' })
        .option('merge', { type: 'string', describe: 'LoRA runs: also write the base with the adapter merged in (W + lora_alpha/r B A) as an HF model folder here' })
        .example('$0 export --checkpoint runs/kp-coord/checkpoint-55 --out hf_model/', '')
        .example('$0 export --checkpoint runs/kp-coord/checkpoint-55 --out hf_model/ --overwrite', 'replace an earlier export')
        .example('$0 export --checkpoint runs/neox-lora/checkpoint-22 --out adapter/ --merge merged/', 'a LoRA run: a PEFT adapter folder, and the merged model'),
    async (a) => {
      // Before reading the checkpoint: an existing --out is replaced only when asked, and only if
      // it holds a model (never an arbitrary folder).
      if (existsSync(a.out) && !(statSync(a.out).isDirectory() && readdirSync(a.out).length === 0)) {
        if (!a.overwrite) throw new OutputPathError(a.out, 'already exists; pass --overwrite to replace the model in it');
        checkReplaceable(a.out, 'an exported model', (dir) => (existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'model.safetensors'))) || (existsSync(join(dir, 'adapter_config.json')) && existsSync(join(dir, 'adapter_model.safetensors'))));
      }
      checkWritableParent(a.out);
      if (a.merge !== undefined) {
        if (existsSync(a.merge) && !(statSync(a.merge).isDirectory() && readdirSync(a.merge).length === 0)) throw new OutputPathError(a.merge, 'already exists and is not empty');
        checkWritableParent(a.merge);
      }
      const manifest = await readVerifiedManifest(a.checkpoint);
      const model = WorkerModel.fromCheckpoint(manifest);
      const size = model.layout.totalSize;
      if (size !== manifest.param_count) throw new KpCoordError(`${a.checkpoint}: ${manifest.param_count} parameters, but ${manifest.model}${model.lora ? ` with LoRA r=${model.lora.r} on [${model.lora.targetModules.join(', ')}]` : ''} has ${size}`);
      if (a.merge !== undefined && !model.lora) throw new KpCoordError(`--merge: ${a.checkpoint} is a full fine-tuning checkpoint (no LoRA adapter to merge); --out already gets the whole model`);
      const flat = new Float32Array(size);
      await readRange(a.checkpoint, manifest.files, 'params', 0, flat);
      // A LoRA run: a PEFT adapter folder; otherwise an HF model folder.
      await model.save(a.out, flat);
      if (a.merge !== undefined) {
        // W + (lora_alpha / r) B A on the base as trained (a preset's base is its seeded init).
        const base = (await model.frozen(manifest.seed))!;
        const merged = mergedWeights(model.family.frozenSpecs(), base, await readPeftAdapter(a.out));
        await saveHfFolder(a.merge, model.configJson(), model.frozenLayout!, merged);
      }
      process.stdout.write(`${JSON.stringify({ out: a.out, steps_done: manifest.steps_done, parameters: size, ...(model.lora ? { adapter: true } : {}), ...(a.merge !== undefined ? { merged: a.merge } : {}) })}\n`);
    },
  );
}
