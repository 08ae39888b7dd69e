/**
 * Where each image's files go in an album. The folder mirrors the bucket's
 * layout (images/RK.png, thumbs/RK.webp, upscaled/RK.png), so every path is
 * an object key built and checked by @nightshift/common's builders: no
 * renderKey can name a file outside those three folders.
 */
import { imageKey, thumbKey, upscaledKey } from '@nightshift/common';
import type { Album, AlbumImage } from './album.js';

export interface AlbumFileOptions {
  /** Include upscaled copies where they exist (a share page leaves them out). */
  upscaled: boolean;
}

/** One file of an album: its path in the folder, which is also its object key. */
export interface AlbumFile {
  path: string;
  kind: 'image' | 'thumb' | 'upscaled';
  renderKey: string;
}

export function imageFiles(img: AlbumImage, opts: AlbumFileOptions): AlbumFile[] {
  const rk = img.renderKey;
  const files: AlbumFile[] = [
    { path: imageKey(rk), kind: 'image', renderKey: rk },
    { path: thumbKey(rk), kind: 'thumb', renderKey: rk },
  ];
  if (opts.upscaled && img.upscaled) files.push({ path: upscaledKey(rk), kind: 'upscaled', renderKey: rk });
  return files;
}

/** Every image file of an album, each once (an image listed twice is written once). */
export function albumFiles(album: Album, opts: AlbumFileOptions): AlbumFile[] {
  const seen = new Set<string>();
  return album.images.flatMap((img) => imageFiles(img, opts)).filter((f) => !seen.has(f.path) && Boolean(seen.add(f.path)));
}
