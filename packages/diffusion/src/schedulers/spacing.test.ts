import { test } from 'node:test';
import assert from 'node:assert/strict';
import { discreteTimesteps, linspaceDescending, roundHalfEven, trailingTimesteps } from './spacing.js';

test('numpy rounding: halves to even', () => {
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, 832.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, -0, -2, 832, 2, 3]);
});

test('the three spacings of Lin et al. table 2 (T = 1000)', () => {
  assert.deepEqual(discreteTimesteps('leading', 1000, 20, 1).slice(0, 3), [951, 901, 851]);
  assert.deepEqual(discreteTimesteps('leading', 1000, 20, 1).at(-1), 1);
  assert.deepEqual(trailingTimesteps(1000, 4), [999, 749, 499, 249]);
  assert.deepEqual(discreteTimesteps('linspace', 1000, 4, 0), [999, 666, 333, 0]);
  assert.deepEqual(linspaceDescending(999, 3), [999, 499.5, 0]);
  assert.deepEqual(discreteTimesteps('linspace', 1000, 7, 0), [999, 832, 666, 500, 333, 166, 0]); // 832.5 → 832, 499.5 → 500, 166.5 → 166
});
