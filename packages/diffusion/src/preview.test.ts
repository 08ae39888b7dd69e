import { test } from 'node:test';
import assert from 'node:assert/strict';
import { latentToRgb, SD15_LATENT_RGB_FACTORS } from './preview.js';

/** A [B,4,h,w] latent whose every pixel of image b has channel values `pixel(b)`. */
function uniform(batch: number, h: number, w: number, pixel: (b: number) => number[]): Float32Array {
  const out = new Float32Array(batch * 4 * h * w);
  for (let b = 0; b < batch; b++) for (let c = 0; c < 4; c++) out.fill(pixel(b)[c]!, (b * 4 + c) * h * w, (b * 4 + c + 1) * h * w);
  return out;
}

test('a zero latent previews mid grey; one channel at 1 shows its factor row', () => {
  const grey = latentToRgb(new Float32Array(4 * 2 * 3), 2, 3);
  assert.equal(grey.width, 3);
  assert.equal(grey.height, 2);
  assert.deepEqual([...grey.rgb], new Array(18).fill(127)); // trunc(0.5·255)
  const c0 = latentToRgb(uniform(1, 1, 1, () => [1, 0, 0, 0]), 1, 1);
  assert.deepEqual([...c0.rgb], SD15_LATENT_RGB_FACTORS[0]!.map((f) => Math.trunc(((f + 1) / 2) * 255)));
});

test('channels sum linearly, clamp at ±1, and pixels are laid out row-major RGB from NCHW planes', () => {
  const saturated = latentToRgb(uniform(1, 1, 1, () => [10, 10, 0, -10]), 1, 1);
  assert.deepEqual([...saturated.rgb], [255, 255, 255]); // 0.3512+0.325+0.212 > 0 … all ×10 past 1
  const dark = latentToRgb(uniform(1, 1, 1, () => [-10, -10, 0, 10]), 1, 1);
  assert.deepEqual([...dark.rgb], [0, 0, 0]);
  // 1×2 latent: pixel 0 has channel 3 at 1 (blue down), pixel 1 all zero.
  const twoPixels = Float32Array.from([0, 0, /* c1 */ 0, 0, /* c2 */ 0, 0, /* c3 */ 1, 0]);
  const { rgb } = latentToRgb(twoPixels, 1, 2);
  const row = SD15_LATENT_RGB_FACTORS[3]!.map((f) => Math.trunc(((f + 1) / 2) * 255));
  assert.deepEqual([...rgb], [...row, 127, 127, 127]);
});

test('the batch index picks one image of a batch; sizes that do not fit are refused', () => {
  const latent = uniform(2, 1, 1, (b) => (b === 0 ? [0, 0, 0, 0] : [1, 0, 0, 0]));
  assert.deepEqual([...latentToRgb(latent, 1, 1, 1).rgb], [...latentToRgb(uniform(1, 1, 1, () => [1, 0, 0, 0]), 1, 1).rgb]);
  assert.throws(() => latentToRgb(latent, 1, 1, 2), /batch index/);
  assert.throws(() => latentToRgb(new Float32Array(10), 1, 2), /not \[B,4,1,2\]/);
});
