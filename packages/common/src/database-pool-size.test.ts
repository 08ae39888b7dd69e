import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_DATABASE_POOL_SIZE, loadConfig } from './config.js';

test('NIGHTSHIFT_DATABASE_POOL_SIZE: 10 unless set; whole numbers from 1 to 200 are taken', () => {
  assert.equal(loadConfig({}).NIGHTSHIFT_DATABASE_POOL_SIZE, 10);
  assert.equal(loadConfig({ NIGHTSHIFT_DATABASE_POOL_SIZE: '' }).NIGHTSHIFT_DATABASE_POOL_SIZE, 10, 'empty counts as unset');
  for (const [value, size] of [['1', 1], ['25', 25], [String(MAX_DATABASE_POOL_SIZE), MAX_DATABASE_POOL_SIZE], [' 40 ', 40]] as const) {
    assert.equal(loadConfig({ NIGHTSHIFT_DATABASE_POOL_SIZE: value }).NIGHTSHIFT_DATABASE_POOL_SIZE, size, JSON.stringify(value));
  }
});

test('NIGHTSHIFT_DATABASE_POOL_SIZE: anything else stops the config, naming the setting and the range', () => {
  for (const value of ['0', '-3', '201', '100000', '1.5', 'ten', 'NaN', 'Infinity']) {
    assert.throws(
      () => loadConfig({ NIGHTSHIFT_DATABASE_POOL_SIZE: value }),
      /invalid configuration: NIGHTSHIFT_DATABASE_POOL_SIZE: a whole number of connections from 1 to 200 \(default 10\)/,
      JSON.stringify(value),
    );
  }
});
