import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Argv } from 'yargs';
import { readVerifiedManifest } from '../../../shared/checkpoint/checkpoint-manifest.js';
import { readRange } from '../../../shared/checkpoint/range-shard.js';
import { KpCoordError, OutputPathError } from '../../../shared/errors.js';
import { checkReplaceable, checkWritableParent } from '../../../shared/out-dir.js';
import { t5ParamSpecs, numel } from '../../../shared/models/t5-params.js';
import { resolveModelConfig, saveHfModel } from '../../../shared/weights/hf-checkpoint.js';

// `kp-coord export`: a checkpoint (any world size) as a Hugging Face model directory. A LoRA run's
// checkpoint holds only its adapter: export-lora.ts (exportLora) writes it as a PEFT adapter and,
// merged, as a model; it is not wired here because the manifest does not yet say a run used LoRA.
export function registerExport(cli: Argv): Argv {
  return cli.command(
    'export',
    'Write a checkpoint as a Hugging Face model directory (config.json + model.safetensors)',
    (y) =>
      y
        .option('checkpoint', { type: 'string', demandOption: true, describe: 'A checkpoint directory (OUTPUT_DIR/checkpoint-<steps>)' })
        .option('out', { type: 'string', demandOption: true, describe: 'Directory to write (must not exist, or be empty)' })
        .option('overwrite', { type: 'boolean', default: false, describe: 'Replace an existing --out that holds an exported model (config.json + model.safetensors)' })
        .example('$0 export --checkpoint runs/kp-coord/checkpoint-55 --out hf_model/', '')
        .example('$0 export --checkpoint runs/kp-coord/checkpoint-55 --out hf_model/ --overwrite', 'replace an earlier export'),
    async (a) => {
      // Before reading the checkpoint: an existing --out is replaced only when asked, and only if
      // it holds a model (never an arbitrary folder).
      if (existsSync(a.out) && !(statSync(a.out).isDirectory() && readdirSync(a.out).length === 0)) {
        if (!a.overwrite) throw new OutputPathError(a.out, 'already exists; pass --overwrite to replace the model in it');
        checkReplaceable(a.out, 'an exported model', (dir) => existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'model.safetensors')));
      }
      checkWritableParent(a.out);
      const manifest = await readVerifiedManifest(a.checkpoint);
      const config = resolveModelConfig(manifest.model);
      const size = t5ParamSpecs(config).reduce((n, p) => n + numel(p.shape), 0);
      if (size !== manifest.param_count) throw new KpCoordError(`${a.checkpoint}: ${manifest.param_count} parameters, but ${manifest.model} has ${size}`);
      const flat = new Float32Array(size);
      await readRange(a.checkpoint, manifest.files, 'params', 0, flat);
      await saveHfModel(a.out, config, flat);
      process.stdout.write(`${JSON.stringify({ out: a.out, steps_done: manifest.steps_done, parameters: size })}\n`);
    },
  );
}
