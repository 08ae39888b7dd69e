// A cheap live preview without the VAE: each latent pixel's 4 channels
// projected linearly to RGB with the factors ComfyUI uses for SD 1.x
// (comfy/latent_formats.py SD15.latent_rgb_factors @040a3243, applied by
// latent_preview.py @0219e5be to the scaled latent x̂₀, no bias), then bytes as
// ComfyUI's preview_to_image makes them: uint8(clamp((v + 1)/2, 0, 1)·255),
// truncating. The image is latent sized (W/8 × H/8); whoever shows it scales it up.

/** Rows: latent channel 0…3; columns: R, G, B. */
export const SD15_LATENT_RGB_FACTORS: readonly (readonly [number, number, number])[] = [
  [0.3512, 0.2297, 0.3227],
  [0.325, 0.4974, 0.235],
  [-0.2829, 0.1762, 0.2721],
  [-0.212, -0.2616, -0.7177],
];

export interface RgbImage {
  width: number;
  height: number;
  /** width·height·3 bytes, row-major, RGB interleaved. */
  rgb: Uint8Array;
}

/** One image of a [B, 4, h, w] latent (NCHW) as RGB bytes. */
export function latentToRgb(latent: Float32Array, height: number, width: number, batchIndex = 0): RgbImage {
  const plane = height * width;
  if (!Number.isInteger(plane) || plane <= 0) throw new RangeError(`latent size ${width}×${height} is not a positive size`);
  if (latent.length % (4 * plane) !== 0) throw new RangeError(`a latent of ${latent.length} values is not [B,4,${height},${width}]`);
  const offset = batchIndex * 4 * plane;
  if (!Number.isInteger(batchIndex) || batchIndex < 0 || offset >= latent.length) throw new RangeError(`batch index ${batchIndex} is outside the latent`);
  const rgb = new Uint8Array(plane * 3);
  for (let p = 0; p < plane; p++) {
    let r = 0;
    let g = 0;
    let b = 0;
    for (let c = 0; c < 4; c++) {
      const z = latent[offset + c * plane + p]!;
      const f = SD15_LATENT_RGB_FACTORS[c]!;
      r += z * f[0];
      g += z * f[1];
      b += z * f[2];
    }
    rgb[p * 3] = toByte(r);
    rgb[p * 3 + 1] = toByte(g);
    rgb[p * 3 + 2] = toByte(b);
  }
  return { width, height, rgb };
}

function toByte(v: number): number {
  return Math.trunc(Math.min(1, Math.max(0, (v + 1) / 2)) * 255);
}
