import sharp from 'sharp';

/**
 * A WebP thumbnail whose longest side is at most `size` px (never enlarged).
 * Fixed encoder settings and no metadata, so the same PNG gives the same bytes.
 */
export async function makeThumbnail(png: Buffer, size = 256): Promise<Buffer> {
  if (!Number.isInteger(size) || size < 1 || size > 4096) {
    throw new RangeError(`thumbnail size must be an integer from 1 to 4096, got ${size}`);
  }
  return sharp(png)
    .resize(size, size, { fit: 'inside', withoutEnlargement: true, kernel: 'lanczos3' })
    .webp({ quality: 80, effort: 4 })
    .toBuffer();
}
