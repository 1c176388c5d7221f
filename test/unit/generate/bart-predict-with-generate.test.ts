import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCacheTokenizer, openDataCache } from '../../../shared/data/data-cache.js';
import { createGenerator } from '../../../shared/generate/keyphrase-generator.js';
import { postprocessKeyphrases } from '../../../shared/generate/keyphrase-postprocess.js';
import { loadGenerationModel } from '../../../shared/generate/load-generation-model.js';
import { CliProcess } from '../../helpers/kp-coord-process.js';

// predict_with_generate in real runs of preset:bart-tiny (`kp-coord start`, one worker process, 2
// steps), full fine-tuning and LoRA (PEFT's default BART targets): the worker decodes the eval
// split's encoder inputs with the final model (an HF BART folder; a PEFT adapter merged into the
// preset's seeded base), the coordinator writes predictions and scores. Checked against decoding the
// cache's inputs here with the final folder as `kp-coord generate` loads it: the same raw output,
// row for row (bart-tiny forces eos at the last of the 8 tokens, as HF's ForcedEOS would).

interface Summary {
  final_model: string;
  generate: { documents: number; predictions_file: string; metrics: Record<string, number> } | null;
}

for (const variant of [
  { name: 'full fine-tuning', settings: [], kind: 'hf' },
  { name: 'LoRA', settings: ['lora.r=4', 'lora.lora_alpha=16'], kind: 'adapter' },
] as const) {
  test(`predict_with_generate on a ${variant.name} run of preset:bart-tiny: predictions for every eval article, equal to decoding the final model here`, { timeout: 300_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kp-pwg-bart-'));
    try {
      const out = join(dir, 'run');
      const settings = [
        'model=preset:bart-tiny', ...variant.settings, 'max_steps=2', 'eval_strategy=steps', 'eval_steps=2', 'save_strategy=no',
        'load_best_model_at_end=false', 'early_stopping_patience=null', 'predict_with_generate=true', 'generation_max_length=8',
        'generation_num_beams=2', 'generation_no_repeat_ngram_size=2', 'run_name=pwg-bart', `output_dir=${out}`,
      ];
      const args = ['start', '--workers', '1', '--threads-per-worker', '1', ...settings.flatMap((s) => ['--set', s])];
      const output = await new CliProcess(args, { ...process.env, KPCOORD_TOKEN: 'a-test-token-of-enough-length' }).succeeded();
      assert.match(output, /generated the eval split \(22 articles\)/);

      const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Summary;
      assert.ok(summary.generate);
      assert.equal(summary.generate.documents, 22);
      assert.ok(Number.isFinite(summary.generate.metrics.rougeL));
      const rows = readFileSync(summary.generate.predictions_file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prediction: string; raw: string });
      assert.equal(rows.length, 22);

      const cache = openDataCache(join(out, 'data-cache'));
      const split = cache.eval!;
      const tokenizer = loadCacheTokenizer(cache.manifest);
      const model = await loadGenerationModel(summary.final_model);
      assert.equal(model.modelType, 'bart');
      assert.equal(model.kind, variant.kind);
      const generator = await createGenerator(model, { intraOpThreads: 1 });
      let ids: number[][];
      try {
        ids = await generator.generate(Array.from({ length: split.size }, (_, i) => split.inputIds(i)), { maxNewTokens: 8, numBeams: 2, noRepeatNgramSize: 2 });
      } finally {
        await generator.release();
      }
      rows.forEach((row, i) => {
        const raw = tokenizer.decode(ids[i]!, { skipSpecialTokens: true });
        assert.equal(row.raw, raw, `eval sample ${i}`);
        assert.equal(row.prediction, postprocessKeyphrases(raw).join('; '), `eval sample ${i}`);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
