import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Runs the built CLI (dist/coordinator/cli/main.js, next to this compiled test) as a user would.
const MAIN = fileURLToPath(new URL('../../../coordinator/cli/main.js', import.meta.url));

function run(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, 'evaluate', ...args], { encoding: 'utf8', env: { ...process.env, KPCOORD_LOG_LEVEL: 'warn' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function withDir(body: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'kp-eval-cli-'));
  try {
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('evaluate --pairs --json prints the JSON report; --out writes PREFIX.json and PREFIX.md', () => {
  withDir((dir) => {
    const pairs = join(dir, 'pairs.jsonl');
    writeFileSync(pairs, '{"label": "a; b", "prediction": "a; c"}\n');
    const r = run(['--pairs', pairs, '--json', '--out', join(dir, 'report')]);
    assert.equal(r.code, 0, r.stderr);
    const json = JSON.parse(r.stdout) as { seed: Record<string, number> };
    // F1@10: TP 1, FP 1, FN 1 -> 50. Jaccard: 1 / (2 + 2 - 1) -> 33.3333.
    assert.deepEqual(json.seed, { f1_at_10: 50, jaccard_at_10: 33.3333 });
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')), json);
    assert.ok(readFileSync(join(dir, 'report.md'), 'utf8').startsWith('# Keyphrase evaluation'));
  });
});

test('evaluate prints a table by default, with present/absent when --source is given', () => {
  withDir((dir) => {
    writeFileSync(join(dir, 'gold.txt'), 'a; b\n');
    writeFileSync(join(dir, 'pred.txt'), 'a; c\n');
    writeFileSync(join(dir, 'src.jsonl'), '{"source": "only a here"}\n');
    const r = run(['--gold', join(dir, 'gold.txt'), '--pred', join(dir, 'pred.txt'), '--source', join(dir, 'src.jsonl'), '--k', '5']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /F1@5 +50\.0000/);
    assert.match(r.stdout, /present/);
    assert.match(r.stdout, /absent/);
  });
});

test('usage mistakes exit 2; bad files exit 1 naming file and line', () => {
  withDir((dir) => {
    assert.equal(run([]).code, 2);
    assert.equal(run(['--gold', 'g.txt']).code, 2);
    assert.equal(run(['--pairs', 'p.jsonl', '--gold', 'g.txt', '--pred', 'q.txt']).code, 2);
    assert.equal(run(['--pairs', 'p.jsonl', '--k', '0']).code, 2);
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"label": "a"}\n');
    const r = run(['--pairs', bad, '--out', join(dir, 'report')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:1: field "prediction"`));
    assert.ok(!existsSync(join(dir, 'report.json')), 'nothing written on failure');
  });
});
