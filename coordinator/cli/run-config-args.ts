import type { Argv } from 'yargs';
import { embeddedDefaultConfig } from '../../shared/config/embedded-default.js';
import { loadRunConfig, resolveRunConfig, type ResolvedRunConfig } from '../../shared/config/resolve-run-config.js';

// The options `start` and `coordinator` share: a run config file (or the embedded default) and
// `--set key=value` overrides applied before validation.
export function withRunConfigOptions<T>(y: Argv<T>) {
  return y
    .option('config', { type: 'string', describe: 'Run config (.yaml/.yml/.json, HF TrainingArguments + DeepSpeed names); default: the embedded sample run' })
    .option('resume', { type: 'string', describe: 'Continue from a checkpoint: DIR, or no value / "latest" for the newest valid one in output_dir (HF resume_from_checkpoint)' })
    .option('set', { type: 'string', array: true, default: [] as string[], describe: 'Override a config key before validation, e.g. --set learning_rate=1e-3 --set zero_optimization.stage=1' });
}

/** `--resume` as a config override (`resume_from_checkpoint`), the empty flag meaning "latest". */
export function resumeOverrides(resume: string | undefined): string[] {
  if (resume === undefined) return [];
  return [`resume_from_checkpoint=${resume === '' ? 'latest' : resume}`];
}

export function resolveRunConfigArgs(config: string | undefined, overrides: readonly string[]): ResolvedRunConfig {
  return config
    ? loadRunConfig(config, { overrides })
    : resolveRunConfig(embeddedDefaultConfig(), { source: 'embedded default', overrides });
}
