import type { Argv } from 'yargs';
import { embeddedDefaultConfig } from '../../shared/config/embedded-default.js';
import { loadRunConfig, resolveRunConfig, type ResolvedRunConfig } from '../../shared/config/resolve-run-config.js';

// The options `start` and `coordinator` share: a run config file (or the embedded default) and
// `--set key=value` overrides applied before validation.
export function withRunConfigOptions<T>(y: Argv<T>) {
  return y
    .option('config', { type: 'string', describe: 'Run config (.yaml/.yml/.json, HF TrainingArguments + DeepSpeed names); default: the embedded sample run' })
    .option('set', { type: 'string', array: true, default: [] as string[], describe: 'Override a config key before validation, e.g. --set learning_rate=1e-3 --set zero_optimization.stage=1' });
}

export function resolveRunConfigArgs(config: string | undefined, overrides: readonly string[]): ResolvedRunConfig {
  return config
    ? loadRunConfig(config, { overrides })
    : resolveRunConfig(embeddedDefaultConfig(), { source: 'embedded default', overrides });
}
