/** The painter's PNG encoding, fixed so a render's bytes (not just its pixels) are reproducible. */
import sharp from 'sharp';

/** Fixed encoder settings: with a given sharp/libvips build these give identical bytes. */
export async function encodePng(rgb: Buffer, width: number, height: number): Promise<Buffer> {
  return sharp(rgb, { raw: { width, height, channels: 3 } })
    .png({ compressionLevel: 6, adaptiveFiltering: false, palette: false })
    .toBuffer();
}
