import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCacheTokenizer, openDataCache } from '../../../shared/data/data-cache.js';
import { createGenerator } from '../../../shared/generate/keyphrase-generator.js';
import { causalKeyphrases, postprocessKeyphrases } from '../../../shared/generate/keyphrase-postprocess.js';
import { loadGenerationModel } from '../../../shared/generate/load-generation-model.js';
import { CliProcess } from '../../helpers/kp-coord-process.js';

// predict_with_generate in real LoRA runs (`kp-coord start`, preset:neox-tiny and preset:t5-tiny,
// one worker process, 2 steps): the worker decodes the eval split's prompts (T5: encoder inputs)
// with the final adapter merged into the preset's seeded base; the coordinator writes predictions
// and scores. Checked against decoding the cache's inputs here with the final folder as
// `kp-coord generate` loads it (the base rebuilt from summary.json's seed): the same raw output row
// for row.

interface Summary {
  seed: number;
  final_model: string;
  generate: { documents: number; predictions_file: string; metrics: Record<string, number> } | null;
}

for (const family of [
  { model: 'preset:neox-tiny', modelType: 'gpt_neox', targets: '[query_key_value]' },
  { model: 'preset:t5-tiny', modelType: 't5', targets: '[q, v]' },
] as const) {
  test(`predict_with_generate on a LoRA run of ${family.model}: predictions for every eval article, equal to decoding the final adapter here`, { timeout: 300_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kp-pwg-lora-'));
    try {
      const out = join(dir, 'run');
      const settings = [
        `model=${family.model}`, 'lora.r=4', 'lora.lora_alpha=16', `lora.target_modules=${family.targets}`, 'max_steps=2',
        'eval_strategy=steps', 'eval_steps=2', 'save_strategy=no', 'load_best_model_at_end=false', 'early_stopping_patience=null',
        'predict_with_generate=true', 'generation_max_length=8', 'generation_num_beams=2', 'generation_no_repeat_ngram_size=2',
        'run_name=pwg-neox', `output_dir=${out}`,
      ];
      const args = ['start', '--workers', '1', '--threads-per-worker', '1', ...settings.flatMap((s) => ['--set', s])];
      const output = await new CliProcess(args, { ...process.env, KPCOORD_TOKEN: 'a-test-token-of-enough-length' }).succeeded();
      assert.match(output, /generated the eval split \(22 articles\)/);

      const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Summary;
      assert.ok(summary.generate);
      assert.equal(summary.generate.documents, 22);
      assert.ok(Number.isFinite(summary.generate.metrics.rougeL));
      const rows = readFileSync(summary.generate.predictions_file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { label: string; prediction: string; raw: string; source: string });
      assert.equal(rows.length, 22);

      const cache = openDataCache(join(out, 'data-cache'));
      const split = cache.eval!;
      const tokenizer = loadCacheTokenizer(cache.manifest);
      const model = await loadGenerationModel(summary.final_model);
      assert.equal(model.kind, 'adapter');
      assert.equal(model.modelType, family.modelType);
      const generator = await createGenerator(model, { intraOpThreads: 1 });
      let ids: number[][];
      try {
        ids = await generator.generate(Array.from({ length: split.size }, (_, i) => split.inputIds(i)), { maxNewTokens: 8, numBeams: 2, noRepeatNgramSize: 2 });
      } finally {
        await generator.release();
      }
      const prefixes = [cache.manifest.rules.input_prefix, cache.manifest.rules.target_prefix];
      const causal = family.modelType === 'gpt_neox';
      rows.forEach((row, i) => {
        const raw = tokenizer.decode(ids[i]!, { skipSpecialTokens: true });
        assert.equal(row.raw, raw, `eval sample ${i}`);
        assert.equal(row.prediction, (causal ? causalKeyphrases(raw, { prefixes }) : postprocessKeyphrases(raw)).join('; '), `eval sample ${i}`);
        // The label is the completion's keyphrases; the source the article, without either prefix.
        const label = tokenizer.decode(split.labelIds(i), { skipSpecialTokens: true });
        assert.equal(row.label, causal ? label.trim() : label);
        assert.ok(!row.source.startsWith(cache.manifest.rules.input_prefix) && !row.source.endsWith(cache.manifest.rules.target_prefix.trimEnd()), `source ${i}`);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
