import { test } from 'node:test';
import assert from 'node:assert/strict';
import { vaeImageToRgb } from './onnx-image.js';

/** The conversion as written first (diffusers' formula with Math.round): the bytes every stored PNG has. */
function reference(data: Float32Array, width: number, height: number, index: number): Buffer {
  const plane = width * height;
  const rgb = Buffer.alloc(plane * 3);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < plane; p++) rgb[p * 3 + c] = Math.round(Math.min(1, Math.max(0, data[index * 3 * plane + c * plane + p]! / 2 + 0.5)) * 255);
  }
  return rgb;
}

test('vaeImageToRgb gives the bytes of round(clamp(x/2 + 0.5)·255): ties up, out of range clamped, NaN 0, any batch index', () => {
  const width = 40;
  const height = 24;
  const batch = 2;
  const data = new Float32Array(batch * 3 * width * height);
  let seed = 7;
  for (let i = 0; i < data.length; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    data[i] = (seed / 2 ** 32) * 2.6 - 1.3;
  }
  // 0 → 127.5 exactly (a tie: 128), the ends, beyond them, NaN, ±0, values just inside each byte boundary.
  const specials = [0, -0, 1, -1, 1.5, -1.5, NaN, Infinity, -Infinity, 1e-30, -1e-30, Math.fround(0.99999994), Math.fround(-0.99999994)];
  for (let k = 0; k < 255; k++) specials.push(Math.fround((2 * k + 1) / 255 - 1), Math.fround((2 * k + 1) / 255 - 1 - 1e-7), Math.fround((2 * k + 1) / 255 - 1 + 1e-7));
  specials.forEach((v, i) => (data[i] = v));
  specials.forEach((v, i) => (data[data.length - 1 - i] = v));
  for (let index = 0; index < batch; index++) {
    const got = vaeImageToRgb({ data, dims: [batch, 3, height, width] }, index);
    assert.equal(got.width, width);
    assert.equal(got.height, height);
    assert.ok(got.rgb.equals(reference(data, width, height, index)), `image ${index}`);
  }
  assert.equal(vaeImageToRgb({ data: new Float32Array(3), dims: [1, 3, 1, 1] }).rgb[0], 128, 'x = 0 is the tie 127.5, rounded up');
});
