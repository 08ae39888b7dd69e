/**
 * Pixels in and out of the VAE: its NCHW float images (about −1…1) to 8-bit
 * RGB and back, as diffusers' image processor converts them
 * (round(clamp(x/2 + 0.5, 0, 1)·255); x/255·2 − 1), the PNG of a render,
 * an init image read for img2img, and the cheap latent preview.
 */
import sharp from 'sharp';
import { latentToRgb } from '@nightshift/diffusion';
import { encodePng, type FloatTensor } from '@nightshift/models';

/** Image `index` of a [B, 3, H, W] VAE output as interleaved RGB bytes. */
export function vaeImageToRgb(image: FloatTensor, index = 0): { rgb: Buffer; width: number; height: number } {
  const [batch, channels, height, width] = image.dims as [number, number, number, number];
  if (image.dims.length !== 4 || channels !== 3) throw new RangeError(`expected a [B, 3, H, W] image, got [${image.dims.join(', ')}]`);
  if (!Number.isInteger(index) || index < 0 || index >= batch) throw new RangeError(`image ${index} is outside a batch of ${batch}`);
  const plane = width * height;
  const offset = index * 3 * plane;
  const data = image.data;
  const rgb = Buffer.alloc(plane * 3);
  for (let c = 0; c < 3; c++) {
    const from = offset + c * plane;
    for (let p = 0, o = c; p < plane; p++, o += 3) {
      // Math.round(y) for y in 0…255 (NaN → 0), branch-free: V8's Math.round cost ~3× this loop (a 512 px
      // image: 8.5 ms against 3). y − ⌊y⌋ and its double are exact, so ties still go up as Math.round's do.
      const y = Math.min(1, Math.max(0, data[from + p]! / 2 + 0.5)) * 255;
      const whole = y | 0;
      rgb[o] = whole + ((2 * (y - whole)) | 0);
    }
  }
  return { rgb, width, height };
}

/** The final PNG of a render (the painter's fixed encoder settings: same pixels, same bytes). */
export async function vaeImageToPng(image: FloatTensor, index = 0): Promise<Buffer> {
  const { rgb, width, height } = vaeImageToRgb(image, index);
  return encodePng(rgb, width, height);
}

/** An encoded image (PNG, WebP, JPEG) resized to width×height as the VAE encoder's input [1, 3, H, W]. */
export async function initImageTensor(bytes: Buffer, width: number, height: number): Promise<FloatTensor> {
  const { data } = await sharp(bytes).toColourspace('srgb').removeAlpha().resize(width, height, { fit: 'fill', kernel: 'lanczos3' }).raw().toBuffer({ resolveWithObject: true });
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) out[c * plane + p] = (data[p * 3 + c]! / 255) * 2 - 1;
  return { data: out, dims: [1, 3, height, width] };
}

/** A latent [1, 4, h, w] as a small WebP (the 4×3 linear projection, scaled up to at most maxSide). */
export async function latentPreviewWebp(latent: Float32Array, height: number, width: number, maxSide: number, quality: number): Promise<Buffer> {
  const img = latentToRgb(latent, height, width);
  const scale = Math.max(1, Math.floor(maxSide / Math.max(width, height)));
  return sharp(Buffer.from(img.rgb.buffer, img.rgb.byteOffset, img.rgb.byteLength), { raw: { width, height, channels: 3 } })
    .resize(width * scale, height * scale, { kernel: 'cubic' })
    .webp({ quality })
    .toBuffer();
}
