import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SD_LATENT_SCALING, scaleAfterEncode, unscaleForDecode } from './latent-scale.js';

test('latents are scaled by 0.18215 after encoding and divided by it before decoding', () => {
  assert.equal(SD_LATENT_SCALING, 0.18215);
  assert.deepEqual([...unscaleForDecode(Float32Array.from([0.18215, -0.3643]))], [1, -2].map(Math.fround));
  assert.deepEqual([...scaleAfterEncode(Float32Array.from([1, 2]))], [0.18215, 0.3643].map(Math.fround));
  assert.deepEqual([...unscaleForDecode(Float32Array.from([1]), 0.5)], [2]); // a model's own scaling_factor
});
