import { test } from 'node:test';
import assert from 'node:assert/strict';
import { costText } from './cost-format.js';

const base = { renders: 12, gpuHours: 0.0123456, measuredRenders: 12, kWh: 0.00308642, cost: 0.00123457, energy: 'measured', pricePerKwh: 0.4 };

test('status cost line: GPU hours, kWh and cost when measured and priced', () => {
  assert.equal(costText(base), '0.0123 GPU-h, 0.00309 kWh, cost 0.00123 at 0.4/kWh');
});

test('status cost line: a partial night says how much was measured', () => {
  assert.equal(costText({ ...base, energy: 'partial', measuredRenders: 5 }), '0.0123 GPU-h, 0.00309 kWh (measured on 5 of 12 renders), cost 0.00123 at 0.4/kWh');
});

test('status cost line: nothing measured is "not measured", never a number', () => {
  const line = costText({ ...base, energy: 'not measured', measuredRenders: 0, kWh: null, cost: null });
  assert.equal(line, '0.0123 GPU-h, energy not measured');
  assert.doesNotMatch(line, /kWh|cost/);
});

test('status cost line: measured without a price names the setting', () => {
  assert.equal(costText({ ...base, cost: null, pricePerKwh: null }), '0.0123 GPU-h, 0.00309 kWh, cost: no price set (NIGHTSHIFT_ENERGY_PRICE)');
});
