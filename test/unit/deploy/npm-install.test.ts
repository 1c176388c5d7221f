import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { REPO_ROOT } from '../../helpers/sample-cache.js';

// A fresh clone's `npm ci` alone must leave a runnable kp-coord, run no download, and print no
// warning. Running `npm ci` here would need the registry, so this checks the settings that make it
// so (checked by hand: rm -rf node_modules dist && npm ci, no warning, dist built), and that npm
// itself reads the project config without complaint.

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
  allowScripts?: Record<string, boolean | string>;
  bin: Record<string, string>;
};

test('npm ci builds (prepare), denies onnxruntime-node\'s download script, and the bin is what tsc writes', () => {
  assert.match(pkg.scripts.prepare ?? '', /^tsc -p tsconfig\.json$/u);
  assert.equal(pkg.allowScripts?.['onnxruntime-node'], false, 'onnxruntime-node\'s postinstall only fetches the CUDA EP');
  assert.equal(pkg.bin['kp-coord'], 'dist/coordinator/cli/main.js');
  // An .npmrc key npm does not know warns on every npm and npx command (and stops working in npm 12).
  assert.ok(!existsSync(join(REPO_ROOT, '.npmrc')) || !/onnxruntime/u.test(readFileSync(join(REPO_ROOT, '.npmrc'), 'utf8')), '.npmrc carries no package switch');
});

test('npm reads the project config without a warning', { skip: spawnSync('npm', ['--version']).status === 0 ? false : 'npm not on PATH' }, () => {
  const r = spawnSync('npm', ['pkg', 'get', 'name'], { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false' } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), '"kp-coord"');
  assert.doesNotMatch(r.stderr, /warn/iu, r.stderr);
});

for (const file of ['Dockerfile', 'Dockerfile.cuda']) {
  test(`deploy/${file}: every npm ci skips lifecycle scripts (prepare needs the sources and tsc)`, () => {
    const text = readFileSync(join(REPO_ROOT, 'deploy', file), 'utf8');
    const installs = [...text.matchAll(/npm ci[^\n]*/gu)].map((m) => m[0]);
    assert.ok(installs.length >= 2, text);
    for (const line of installs) assert.match(line, /--ignore-scripts/u, line);
    if (file === 'Dockerfile.cuda') assert.match(text, /node node_modules\/onnxruntime-node\/script\/install\.js/u);
  });
}
