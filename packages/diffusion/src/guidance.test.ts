import { test } from 'node:test';
import assert from 'node:assert/strict';
import { combineGuidance, duplicateForGuidance, usesGuidance } from './guidance.js';

test('CFG combines the unconditional first half with the conditional second half, per batch row', () => {
  // B = 2 rows of 3 values: uncond rows then cond rows.
  const out = Float32Array.from([0, 1, 2, 10, 11, 12, /* cond */ 1, 1, 4, 10, 13, 12]);
  assert.deepEqual([...combineGuidance(out, 2, 7.5)], [7.5, 1, 17, 10, 26, 12]);
  assert.deepEqual([...combineGuidance(out, 2, 1)], [1, 1, 4, 10, 13, 12]); // g = 1 is the conditional output
  assert.deepEqual([...combineGuidance(out, 2, 0)], [0, 1, 2, 10, 11, 12]); // g = 0 the unconditional one
});

test('CFG rounds like float32 torch and refuses outputs that do not split into 2B rows', () => {
  const [v] = combineGuidance(Float32Array.from([0.1, 0.3]), 1, 7.5);
  const f = Math.fround;
  assert.equal(v, f(f(0.1) + f(f(7.5) * f(f(0.3) - f(0.1)))));
  assert.throws(() => combineGuidance(new Float32Array(6), 2, 7), /does not split into 2×2 rows/);
  assert.throws(() => combineGuidance(new Float32Array(4), 0, 7), /positive integer/);
});

test('the guided UNet input repeats the latent batch; guidance below or at 1 needs no second pass', () => {
  assert.deepEqual([...duplicateForGuidance(Float32Array.from([1, 2]))], [1, 2, 1, 2]);
  assert.equal(usesGuidance(7.5), true);
  assert.equal(usesGuidance(1), false);
  assert.equal(usesGuidance(0), false);
});
