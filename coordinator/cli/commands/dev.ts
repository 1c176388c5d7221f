import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Argv } from 'yargs';
import { InputFileError } from '../../../shared/errors.js';
import { rootLogger } from '../../../shared/log.js';
import { parseBartConfig } from '../../../shared/models/bart-config.js';
import { bartParamSpecs } from '../../../shared/models/bart-params.js';
import { MODEL_PRESETS, resolveModelSpec } from '../../../shared/models/model-spec.js';
import { neoxConfigJson, parseNeoXConfig } from '../../../shared/models/neox-config.js';
import { neoxParamSpecs } from '../../../shared/models/neox-params.js';
import { parseT5Config } from '../../../shared/models/t5-config.js';
import { t5ParamSpecs } from '../../../shared/models/t5-params.js';
import { CONFIG_NAME, saveBartModel, saveHfFolder, saveHfModel } from '../../../shared/weights/hf-checkpoint.js';
import { FlatLayout } from '../../../shared/weights/flat-layout.js';
import { initFlatRange, initT5Flat } from '../../../shared/weights/init.js';
import { SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME } from '../../../shared/weights/sharded-index.js';
import { registerDevGrads } from './dev-grads.js';
import type { RegisterCommand } from './index.js';

// `kp-coord dev ...`: developer tools. Each subcommand registers itself like a top-level command;
// other files may add theirs to `devSubcommands` before the CLI parses.

const log = rootLogger.child({ cmd: 'dev' });

function registerInitModel(cli: Argv): Argv {
  return cli.command(
    'init-model',
    'Write a freshly initialised model directory, T5, GPT-NeoX or BART (config.json + model.safetensors, HF layout)',
    (y) =>
      y
        .option('out', { type: 'string', demandOption: true, describe: 'Directory to write' })
        .option('preset', { type: 'string', choices: Object.keys(MODEL_PRESETS), describe: 'Built-in model shape' })
        .option('config', { type: 'string', describe: 'An HF config.json, T5, GPT-NeoX or BART by its model_type (or a model directory holding one)' })
        .option('seed', { type: 'number', default: 0, describe: 'Seed of the initialisation (same seed, same weights)' })
        .option('force', { type: 'boolean', default: false, describe: 'Overwrite a model already in --out' })
        .conflicts('preset', 'config')
        .check((a) => {
          if (a.preset === undefined && a.config === undefined) return 'Give --preset NAME or --config FILE.';
          if (!Number.isSafeInteger(a.seed) || a.seed < 0) return `--seed must be a non-negative integer, got ${a.seed}.`;
          return true;
        })
        .example('$0 dev init-model --preset t5-tiny --out /tmp/t5-tiny', 'a tiny model for tests'),
    async (a) => {
      const started = performance.now();
      const spec = resolveModelSpec(a.preset !== undefined ? `preset:${a.preset}` : a.config!);
      const held = [CONFIG_NAME, SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME].filter((f) => existsSync(join(a.out, f)));
      if (held.length > 0 && !a.force) {
        throw new InputFileError(a.out, '', `already holds ${held.join(', ')}; pass --force to overwrite`);
      }
      let layout: FlatLayout;
      let write: () => Promise<void>;
      if (spec.modelType === 't5') {
        const config = parseT5Config(spec.configRaw);
        layout = FlatLayout.fromSpecs(t5ParamSpecs(config));
        const flat = initT5Flat(config, layout, a.seed);
        write = () => saveHfModel(a.out, config, flat);
      } else if (spec.modelType === 'bart') {
        // final_logits_bias: zeros, as HF's BartForConditionalGeneration registers it.
        const config = parseBartConfig(spec.configRaw);
        const specs = bartParamSpecs(config);
        layout = FlatLayout.fromSpecs(specs);
        const flat = initFlatRange(specs, layout, a.seed, 0, layout.totalSize);
        write = () => saveBartModel(a.out, config, flat, null);
      } else {
        const config = parseNeoXConfig(spec.configRaw);
        const specs = neoxParamSpecs(config);
        layout = FlatLayout.fromSpecs(specs);
        const flat = initFlatRange(specs, layout, a.seed, 0, layout.totalSize);
        write = () => saveHfFolder(a.out, neoxConfigJson(config), layout, flat);
      }
      const initialised = performance.now();
      await write();
      const seconds = (performance.now() - started) / 1000;
      log.info(
        { out: a.out, parameters: layout.totalSize, initSeconds: (initialised - started) / 1000, seconds },
        'wrote initialised model',
      );
      process.stdout.write(`${JSON.stringify({ out: a.out, parameters: layout.totalSize, tensors: layout.params.length, seed: a.seed })}\n`);
    },
  );
}

/** Subcommands of `kp-coord dev`, in --help order. */
export const devSubcommands: RegisterCommand[] = [registerInitModel, registerDevGrads];

export function registerDev(cli: Argv): Argv {
  return cli.command(
    'dev',
    'Developer tools (see kp-coord dev --help)',
    (y) => {
      let group = y;
      for (const register of devSubcommands) group = register(group);
      return group.demandCommand(1, 'Name a dev subcommand; see kp-coord dev --help.');
    },
    () => {
      // Never reached: demandCommand requires a subcommand.
    },
  );
}
