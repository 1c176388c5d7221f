import test from 'node:test';
import assert from 'node:assert/strict';
import { batchShapeFor } from '../../../coordinator/batch-shape.js';

test('batchShapeFor keeps the global batch and never grows the per-device batch', () => {
  for (let global = 1; global <= 64; global++) {
    for (let available = 1; available <= 9; available++) {
      for (const maxPerDevice of [1, 2, 3, 4, 8]) {
        const s = batchShapeFor(available, global, maxPerDevice);
        assert.equal(s.world * s.perDevice * s.gradAccum, global, JSON.stringify({ global, available, maxPerDevice, s }));
        assert.ok(s.world <= available && s.perDevice <= maxPerDevice);
        // No larger world would have worked.
        for (let w = s.world + 1; w <= Math.min(available, global); w++) assert.notEqual(global % w, 0);
      }
    }
  }
  assert.deepEqual(batchShapeFor(3, 32, 4), { world: 2, perDevice: 4, gradAccum: 4 }); // 3 does not divide 32
  assert.deepEqual(batchShapeFor(1, 16, 8), { world: 1, perDevice: 8, gradAccum: 2 });
  assert.deepEqual(batchShapeFor(4, 12, 4), { world: 4, perDevice: 3, gradAccum: 1 });
  assert.throws(() => batchShapeFor(0, 8, 8), /batch shape/);
});
