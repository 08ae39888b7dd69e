import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logAvx2, sincosAvx2 } from './cephes-avx2.js';

// Bit-exactness against torch is torch-generator.test.ts's job; here, that the port is the right function.
test('log256_ps lane: natural log within 2 float ulps over (0, 1], NaN for x ≤ 0', () => {
  for (let k = 1; k <= 4096; k++) {
    const x = Math.fround(k / 4096);
    const want = Math.log(x);
    assert.ok(Math.abs(logAvx2(x) - want) <= 2.5e-7 * Math.max(1, Math.abs(want)), `log(${x})`);
  }
  assert.equal(logAvx2(1), 0);
  assert.ok(Number.isNaN(logAvx2(0)));
  assert.ok(Number.isNaN(logAvx2(-1)));
});

test('sincos256_ps lane: sin and cos within 1e-7 over [0, 2π), quadrant signs right', () => {
  for (let k = 0; k < 4096; k++) {
    const x = Math.fround((2 * Math.PI * k) / 4096);
    const [s, c] = sincosAvx2(x);
    assert.ok(Math.abs(s - Math.sin(x)) < 1e-7 && Math.abs(c - Math.cos(x)) < 1e-7, `sincos(${x})`);
  }
  const [s, c] = sincosAvx2(-Math.fround(1));
  assert.ok(Math.abs(s - Math.sin(-1)) < 1e-7 && Math.abs(c - Math.cos(-1)) < 1e-7);
});
