import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventReader } from '../../../coordinator/nats/event-reader.js';
import { openDataCache } from '../../../shared/data/data-cache.js';
import type { KpcoordEvent } from '../../../shared/events/events-v1.js';
import { postprocessKeyphrases } from '../../../shared/generate/keyphrase-postprocess.js';
import { T5Generator } from '../../../shared/generate/t5-generator.js';
import { ByteTokenizer } from '../../../shared/tokenizer/byte-tokenizer.js';
import { loadHfModel } from '../../../shared/weights/hf-checkpoint.js';
import { CLI, CliProcess } from '../../helpers/kp-coord-process.js';
import { NatsTestServer, natsServerInstalled } from '../../helpers/nats-server.js';

// predict_with_generate in a real run (2 worker processes, the shipped sample set's 22 eval
// articles): the workers decode their shares with the final (best) model, the coordinator merges
// them in eval order, scores them, writes summary.json and publishes the scores on NATS. Checked
// against decoding the same articles here with the saved model, and against `kp-coord evaluate`.

interface Summary {
  final_weights: string;
  best_step: number | null;
  generate: { documents: number; predictions_file: string; metrics: Record<string, number>; settings: Record<string, number> } | null;
}

test('predict_with_generate: workers share the eval split, the result is the final model\'s decoding, scored as kp-coord evaluate scores it', { timeout: 300_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-pwg-'));
  const nats = natsServerInstalled() ? await NatsTestServer.start() : null;
  try {
    const out = join(dir, 'run');
    const settings = [
      'model=preset:t5-tiny', 'max_steps=4', 'eval_strategy=steps', 'eval_steps=2', 'save_strategy=steps', 'save_steps=2',
      'load_best_model_at_end=true', 'predict_with_generate=true', 'generation_max_length=12', 'generation_num_beams=2',
      'generation_no_repeat_ngram_size=2', 'run_name=pwg-test', `output_dir=${out}`,
    ];
    const args = ['start', '--workers', '2', '--threads-per-worker', '1', ...settings.flatMap((s) => ['--set', s]), ...(nats ? ['--nats', nats.url] : [])];
    const output = await new CliProcess(args).succeeded();
    assert.match(output, /generated the eval split \(22 articles\)/);

    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Summary;
    assert.equal(summary.final_weights, 'best');
    assert.ok(summary.generate);
    assert.equal(summary.generate.documents, 22);
    assert.deepEqual(summary.generate.settings, { max_new_tokens: 12, num_beams: 2, no_repeat_ngram_size: 2 });

    // The same articles decoded here with the saved final model: row for row the same output.
    const cache = openDataCache(join(out, 'data-cache'));
    const split = cache.eval!;
    const model = await loadHfModel(join(out, 'final'));
    const generator = await T5Generator.create(model.config, model.flat, { intraOpThreads: 1 });
    const ids = await generator.generate(Array.from({ length: split.size }, (_, i) => split.inputIds(i)), { maxNewTokens: 12, numBeams: 2, noRepeatNgramSize: 2 });
    await generator.release();
    const tokenizer = new ByteTokenizer();
    const rows = readFileSync(summary.generate.predictions_file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string | null; label: string; prediction: string; raw: string });
    assert.equal(rows.length, split.size);
    rows.forEach((row, i) => {
      const raw = tokenizer.decode(ids[i]!, { skipSpecialTokens: true });
      assert.equal(row.raw, raw, `eval sample ${i}`);
      assert.equal(row.prediction, postprocessKeyphrases(raw).join('; '), `eval sample ${i}`);
      assert.equal(row.id, split.source(i).id);
      assert.equal(row.label, tokenizer.decode(split.labelIds(i), { skipSpecialTokens: true }));
    });

    // kp-coord evaluate on the written pairs gives the numbers in summary.json.
    const evaluated = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, [CLI, 'evaluate', '--pairs', summary.generate!.predictions_file, '--source', summary.generate!.predictions_file, '--json'], { encoding: 'utf8' }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
    const report = JSON.parse(evaluated) as { seed: Record<string, number>; field: { all: { scores: Record<string, { f1_mean: number }> } }; rouge: Record<string, number> };
    const m = summary.generate.metrics;
    assert.equal(m.seed_f1_at_10, report.seed.f1_at_10);
    assert.equal(m.seed_jaccard_at_10, report.seed.jaccard_at_10);
    assert.equal(m.field_f1_at_5, report.field.all.scores.f1_at_5!.f1_mean);
    assert.equal(m.rougeL, report.rouge.rougeL);

    // Published on NATS as an eval event carrying the same scores.
    if (nats) {
      const reader = await EventReader.open({ url: nats.url }, 'kpcoord');
      const events: KpcoordEvent[] = [];
      try {
        await reader.read('pwg-test', { follow: false, onEvent: (e) => void events.push(e) });
      } finally {
        await reader.close();
      }
      const generated = events.filter((e) => e.kind === 'eval' && !('eval_loss' in e.event));
      assert.equal(generated.length, 1, JSON.stringify(events.map((e) => e.kind)));
      const g = generated[0]!.event as { documents: number; metrics: Record<string, number> };
      assert.equal(g.documents, 22);
      assert.deepEqual(g.metrics, m);
    }
  } finally {
    await nats?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
