import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliProcess } from '../../helpers/kp-coord-process.js';
import { markRunInterrupted, readRunRecord, writeRunRecord } from '../../../coordinator/run-record.js';

test('run.json: written atomically, read back by run name, Ctrl-C marks it interrupted, bad files named', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-run-record-'));
  try {
    assert.equal(readRunRecord(dir, null), null);
    await writeRunRecord(dir, { run_id: 'r1', status: 'running', pid: 1, updated: 'now' });
    assert.equal(readRunRecord(dir, null)?.status, 'running');
    assert.equal(readRunRecord(dir, 'r1')?.run_id, 'r1');
    assert.equal(readRunRecord(dir, 'other'), null, 'a configured run name must match');
    markRunInterrupted(dir);
    assert.equal(readRunRecord(dir, null)?.status, 'interrupted');
    writeFileSync(join(dir, 'run.json'), '{"run_id": "r1", "status": "sleeping", "pid": 1, "updated": "x"}');
    assert.throws(() => readRunRecord(dir, null), /run\.json.*status/s);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kp-coord coordinator refuses to start over where a run failed (a cluster restart must not)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kp-run-failed-'));
  try {
    await writeRunRecord(dir, { run_id: 'r-failed', status: 'failed', pid: 1, updated: '2026-11-28T00:00:00Z' });
    const p = new CliProcess(['coordinator', '--insecure-plaintext', '--listen', '127.0.0.1:0', '--set', `output_dir=${dir}`, '--set', 'model=preset:t5-tiny'], { ...process.env, KPCOORD_TOKEN: 'run-record-test-token-0123456789' });
    const { code } = await p.exited;
    assert.equal(code, 1, p.output);
    assert.match(p.output, /run r-failed failed here .*not starting over.*resume_from_checkpoint/s);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
