import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { T5_PRESETS } from '../../../shared/models/presets.js';
import { loadHfModel, resolveModelConfig } from '../../../shared/weights/hf-checkpoint.js';
import { initT5Flat } from '../../../shared/weights/init.js';

// `kp-coord dev init-model` run as a real child process of the compiled CLI.
const MAIN = fileURLToPath(new URL('../../../coordinator/cli/main.js', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'kp-cli-dev-'));
after(() => rmSync(root, { recursive: true, force: true }));

function kpCoord(...args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, KPCOORD_LOG_LEVEL: 'warn' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

test('dev --help lists init-model', () => {
  const r = kpCoord('dev', '--help');
  assert.equal(r.status, 0);
  assert.match(r.stdout, /kp-coord dev init-model/);
});

test('dev init-model --preset writes a loadable model equal to initT5Flat(seed)', async () => {
  const out = join(root, 'tiny');
  const r = kpCoord('dev', 'init-model', '--preset', 't5-tiny', '--out', out, '--seed', '7');
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as { out: string; parameters: number; seed: number };
  assert.equal(summary.out, out);
  assert.equal(summary.seed, 7);
  assert.deepEqual(readdirSync(out).sort(), ['config.json', 'model.safetensors']);

  const loaded = await loadHfModel(out);
  assert.equal(summary.parameters, loaded.layout.totalSize);
  assert.deepEqual(bits(loaded.flat), bits(initT5Flat(loaded.config, loaded.layout, 7)));
  assert.equal(loaded.config.dModel, T5_PRESETS['t5-tiny']!.d_model);
});

test('dev init-model --config takes a config.json; refuses to overwrite without --force', async () => {
  const configPath = join(root, 'custom.json');
  writeFileSync(configPath, JSON.stringify({ ...T5_PRESETS['t5-tiny'], d_model: 16, d_kv: 4, tie_word_embeddings: true }));
  const out = join(root, 'custom');
  assert.equal(kpCoord('dev', 'init-model', '--config', configPath, '--out', out).status, 0);
  const first = await loadHfModel(out);
  assert.equal(first.config.dModel, 16);
  assert.ok(!first.layout.has('lm_head.weight'));
  assert.deepEqual(bits(first.flat), bits(initT5Flat(resolveModelConfig(configPath), first.layout, 0)), 'default seed 0');

  const again = kpCoord('dev', 'init-model', '--config', configPath, '--out', out, '--seed', '1');
  assert.equal(again.status, 1);
  assert.match(again.stderr, new RegExp(`${out}: already holds config\\.json, model\\.safetensors; pass --force`));
  assert.equal(kpCoord('dev', 'init-model', '--config', configPath, '--out', out, '--seed', '1', '--force').status, 0);
  assert.notDeepEqual(bits((await loadHfModel(out)).flat), bits(first.flat));
});

test('usage mistakes exit with code 2, bad input files with code 1', () => {
  assert.equal(kpCoord('dev').status, 2);
  assert.equal(kpCoord('dev', 'init-model', '--preset', 't5-tiny').status, 2, 'missing --out');
  const neither = kpCoord('dev', 'init-model', '--out', join(root, 'x'));
  assert.equal(neither.status, 2, 'neither --preset nor --config');
  assert.match(neither.stderr, /Give --preset NAME or --config FILE/);
  assert.equal(kpCoord('dev', 'init-model', '--preset', 't5-tiny', '--out', join(root, 'x'), '--seed', '-3').status, 2, 'negative seed');
  assert.equal(kpCoord('dev', 'init-model', '--preset', 'nope', '--out', join(root, 'x')).status, 2, 'unknown preset');
  assert.equal(kpCoord('dev', 'init-model', '--preset', 't5-tiny', '--config', 'c.json', '--out', join(root, 'x')).status, 2, 'both');
  const missing = kpCoord('dev', 'init-model', '--config', join(root, 'absent.json'), '--out', join(root, 'y'));
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /absent\.json: no such model directory or config file/);
});
