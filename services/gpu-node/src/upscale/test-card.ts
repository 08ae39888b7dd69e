/** Test images for the upscale tests and benchmark. */
import type { RgbImage } from './tiler.js';

/** A busy test card: gradients, hard edges and per-pixel noise, so seams would show. */
export function testCard(width: number, height: number, seed = 1): RgbImage {
  const data = new Uint8Array(width * height * 3);
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const checker = ((x >> 3) + (y >> 3)) & 1;
      data[i] = Math.round((x / width) * 255);
      data[i + 1] = checker ? 230 : 20;
      data[i + 2] = Math.round(rnd() * 255);
    }
  }
  return { data, width, height };
}
