import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { DataSplit } from '../shared/data/data-cache.js';
import type { DistributedSampler } from '../shared/data/sampler.js';
import { createGenerator } from '../shared/generate/keyphrase-generator.js';
import { loadGenerationModel } from '../shared/generate/load-generation-model.js';
import { writeBytesAtomically } from '../shared/weights/atomic-file.js';
import type { Generate } from '../proto/gen/control/control.js';
import type { EngineOptions } from '../shared/onnx/session-options.js';

// predict_with_generate on one rank: decode its share of the eval split (the same partition as
// the eval loss, so every sample is decoded exactly once) with the saved final model, and write
// the generated ids where the coordinator merges them. Ids, not text: the coordinator holds the
// tokenizer and the metrics. The final model is an HF folder (T5 or GPT-NeoX: the inputs are the
// split's encoder inputs or its prompts) or, for a LoRA run, a PEFT adapter folder decoded with
// the adapters merged into the base (a preset base rebuilt from the run's seed, `initSeed`).

export const GeneratedShareSchema = z.strictObject({
  rank: z.number().int().nonnegative(),
  rows: z.array(z.strictObject({ index: z.number().int().nonnegative(), ids: z.array(z.number().int().nonnegative()) })),
});
export type GeneratedShare = z.infer<typeof GeneratedShareSchema>;

export function generatedShareFile(outDir: string, rank: number): string {
  return join(outDir, `rank-${rank}.json`);
}

export async function generateShare(
  eval_: { readonly split: DataSplit; readonly sampler: DistributedSampler },
  rank: number,
  command: Generate,
  engine: Partial<EngineOptions>,
  initSeed: number,
): Promise<{ file: string; samples: number; tokens: number }> {
  const indices = eval_.sampler.epochMicroBatches(0, rank).flatMap((mb) => Array.from(mb));
  const model = await loadGenerationModel(command.modelDir, { adapterBaseSeed: initSeed });
  const generator = await createGenerator(model, engine);
  let out: number[][];
  try {
    out = await generator.generate(indices.map((i) => eval_.split.inputIds(i)), {
      maxNewTokens: command.maxNewTokens,
      numBeams: command.numBeams,
      noRepeatNgramSize: command.noRepeatNgramSize,
      batchSize: command.batchSize,
    });
  } finally {
    await generator.release();
  }
  const share: GeneratedShare = { rank, rows: indices.map((index, j) => ({ index, ids: out[j]! })) };
  await mkdir(command.outDir, { recursive: true });
  const file = generatedShareFile(command.outDir, rank);
  await writeBytesAtomically(file, `${JSON.stringify(share)}\n`);
  return { file, samples: indices.length, tokens: out.reduce((n, ids) => n + ids.length, 0) };
}
