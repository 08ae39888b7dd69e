import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bitsOf, f32, fmaf } from './float32.js';

// a·b = 16777217·2⁻²⁴ = 1 + 2⁻²⁴ exactly (16777217 = 97·257·673): the midpoint
// between the floats 1 and 1 + 2⁻²³.
const a = 97 * 257;
const b = 673 * 2 ** -24;

test('fmaf rounds a·b + c once: a tiny c the double sum loses still decides the tie', () => {
  assert.equal(a * b + 2 ** -80, 1 + 2 ** -24); // the double sum lands on the tie…
  assert.equal(f32(a * b + 2 ** -80), 1); // …so rounding it again goes to even, wrongly
  assert.equal(fmaf(a, b, 2 ** -80), 1 + 2 ** -23);
  assert.equal(fmaf(a, b, -(2 ** -80)), 1);
  assert.equal(fmaf(a, b, 0), 1); // an exact tie: to even
  assert.equal(fmaf(-a, b, -(2 ** -80)), -(1 + 2 ** -23));
});

test('fmaf equals one rounding of the exact value away from ties', () => {
  assert.equal(fmaf(f32(0.1), f32(0.2), f32(0.3)), f32(f32(0.1) * f32(0.2) + f32(0.3)));
  assert.equal(fmaf(3, 5, -15), 0);
  assert.equal(bitsOf(f32(1)), 0x3f800000);
  assert.equal(bitsOf(-2), 0xc0000000);
});
