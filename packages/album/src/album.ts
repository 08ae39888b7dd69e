/**
 * What an album holds: rendered images with what made them. The coordinator
 * builds one from a selection (favorites, a sweep, chosen keys); the CLI
 * reads it as JSON (POST /api/albums) and writes it out with the same code
 * the coordinator uses for a .zip download and a share page.
 */

/** More than a night's keepers; keeps a download and a share page bounded. */
export const MAX_ALBUM_IMAGES = 1_000;

export interface AlbumImage {
  /** The image's renderKey: its objects are images/RK.png, thumbs/RK.webp, upscaled/RK.png. */
  renderKey: string;
  prompt: string;
  seed: number;
  sweepId: string | null;
  /** The render settings (width, height, steps, guidance, sampler, …). */
  params: Record<string, unknown>;
  /** An upscaled copy (upscaled/RK.png) exists. */
  upscaled: boolean;
}

export interface Album {
  title: string;
  /** ISO time the album was made. */
  createdAt: string;
  images: AlbumImage[];
}
