/**
 * Preview frames for a painted image, as a diffusion model would show them:
 * a small nearest-neighbour copy blended from seeded colour noise (t = 0) to
 * the image (t = 1), encoded as WebP. Deterministic like the image itself.
 */
import sharp from 'sharp';
import { hashString, SALT, streamFor } from './random.js';
import type { ProceduralImage } from './render.js';

export interface PreviewOptions {
  /** Longest side of the frames (px). */
  maxSide: number;
  /** WebP quality. */
  quality: number;
}

export class PreviewRamp {
  readonly width: number;
  readonly height: number;
  private readonly small: Uint8Array;
  private readonly noise: Uint8Array;
  private readonly frame: Buffer;

  constructor(
    img: ProceduralImage,
    prompt: string,
    seed: number,
    private readonly opts: PreviewOptions,
  ) {
    const { width, height } = img;
    const scale = Math.min(1, opts.maxSide / Math.max(width, height));
    const pw = Math.max(1, Math.round(width * scale));
    const ph = Math.max(1, Math.round(height * scale));
    const small = new Uint8Array(pw * ph * 3);
    for (let y = 0; y < ph; y++) {
      const sy = Math.min(height - 1, Math.floor(((y + 0.5) * height) / ph));
      for (let x = 0; x < pw; x++) {
        const sx = Math.min(width - 1, Math.floor(((x + 0.5) * width) / pw));
        small.set(img.data.subarray((sy * width + sx) * 3, (sy * width + sx) * 3 + 3), (y * pw + x) * 3);
      }
    }
    const noiseRng = streamFor(SALT.preview, hashString(prompt), seed);
    const noise = new Uint8Array(small.length);
    for (let i = 0; i < noise.length; i++) noise[i] = Math.floor(noiseRng() * 256);
    this.width = pw;
    this.height = ph;
    this.small = small;
    this.noise = noise;
    this.frame = Buffer.alloc(small.length);
  }

  /** The frame at progress t (0 = noise, 1 = the image) as WebP. One call at a time: the pixel buffer is reused. */
  async frameAt(t: number): Promise<Buffer> {
    const { frame, noise, small } = this;
    for (let i = 0; i < frame.length; i++) frame[i] = Math.round(noise[i]! + (small[i]! - noise[i]!) * t);
    return sharp(frame, { raw: { width: this.width, height: this.height, channels: 3 } })
      .webp({ quality: this.opts.quality, effort: 1 })
      .toBuffer();
  }
}
