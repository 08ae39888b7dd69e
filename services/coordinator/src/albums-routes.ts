/**
 * /api/albums (issue 15): an album as JSON (what `nightshift album` writes
 * out) and as a .zip download (the dashboard's "Download album"). Behind the
 * API token like the rest of /api.
 *   POST /api/albums      {favorites|sweep|keys, title?} → Album
 *   POST /api/albums/zip  the same → application/zip (index.html, thumbs/, images/, upscaled/)
 */
import { Hono, type Context } from 'hono';
import { albumZip } from '@nightshift/album';
import type { Storage } from '@nightshift/common';
import { tooLarge } from './body-rules.js';
import { AlbumError, parseSelection, resolveAlbum, type AlbumDeps, type Selection } from './albums.js';
import { callerOf } from './callers.js';

/**
 * The zip is built in memory (adm-zip does not stream), so its bytes are
 * bounded, and one is packed at a time: the images, adm-zip's copy of each
 * stored entry and the finished zip sit in memory together (about three
 * times MAX_ZIP_BYTES at the peak), and a few concurrent downloads must not
 * take the coordinator's memory with them.
 */
export const MAX_ZIP_BYTES = 256 * 1024 * 1024;

export interface AlbumRouteDeps extends AlbumDeps {
  storage: Pick<Storage, 'get'>;
}

/** The JSON body as a selection; AlbumError for anything else. */
export async function selectionOf(c: Context): Promise<Selection> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new AlbumError(400, 'request body is not valid JSON');
  }
  return parseSelection(body);
}

export const albumErrorResponse = (c: Context, err: unknown) => {
  if (err instanceof AlbumError) return c.json({ error: err.message, details: err.details }, err.status);
  throw err;
};

/** A file name for the download: the title's letters and digits. */
const fileName = (title: string) => `${title.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 80) || 'album'}.zip`;

export function albumRoutes(deps: AlbumRouteDeps): Hono {
  const app = new Hono();
  app.post('/', tooLarge(256 * 1024, '256 KiB'), async (c) => {
    try {
      return c.json(await resolveAlbum(deps, await selectionOf(c), Date.now(), callerOf(c)));
    } catch (err) {
      return albumErrorResponse(c, err);
    }
  });

  let packing = false;
  app.post('/zip', tooLarge(256 * 1024, '256 KiB'), async (c) => {
    if (packing) return c.json({ error: 'another album is being packed: try again in a moment', details: [] }, 503, { 'Retry-After': '5' });
    packing = true;
    let zip: Buffer;
    let title: string;
    try {
      const album = await resolveAlbum(deps, await selectionOf(c), Date.now(), callerOf(c));
      title = album.title;
      let total = 0;
      zip = await albumZip(
        album,
        async (key) => {
          const bytes = await deps.storage.get(key).catch((err: unknown) => {
            const code = (err as { code?: string }).code;
            throw new AlbumError(503, code === 'NoSuchKey' || code === 'NotFound' ? `${key} is missing from the bucket` : 'storage unavailable');
          });
          total += bytes.length;
          if (total > MAX_ZIP_BYTES) throw new AlbumError(413, `album too large to download: over ${MAX_ZIP_BYTES / 1024 / 1024} MiB of images; choose fewer, or write it with \`nightshift album\` (no size limit)`);
          return bytes;
        },
        { upscaled: true },
      );
    } catch (err) {
      return albumErrorResponse(c, err);
    } finally {
      packing = false;
    }
    // A view of the zip, not a copy of it (a Buffer adm-zip made is never over shared memory).
    return c.body(new Uint8Array(zip.buffer as ArrayBuffer, zip.byteOffset, zip.byteLength), 200, {
      'Content-Type': 'application/zip',
      'Content-Disposition': `attachment; filename="${fileName(title)}"`,
      'Cache-Control': 'no-store',
    });
  });
  return app;
}
