/**
 * Writes an album out: as a folder (the CLI) or as one .zip (the CLI's --zip
 * and the dashboard's download). The bytes come from `read` (the CLI fetches
 * /files/…, the coordinator reads the bucket), a few at a time.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import AdmZip from 'adm-zip';
import type { Album } from './album.js';
import { albumFiles, type AlbumFile, type AlbumFileOptions } from './files.js';
import { albumHtml } from './html.js';

/** Reads one object's bytes by key (images/RK.png, thumbs/RK.webp, upscaled/RK.png). */
export type ReadObject = (key: string) => Promise<Uint8Array>;

export interface WriteOptions extends AlbumFileOptions {
  /** Objects read at once. */
  concurrency?: number;
  /** Called after each file, for progress. */
  onFile?: (done: number, total: number) => void;
}

/** index.html and album.json: what a person opens, and the same facts for scripts. */
function pages(album: Album, opts: AlbumFileOptions): { path: string; bytes: Buffer }[] {
  return [
    { path: 'index.html', bytes: Buffer.from(albumHtml(album, opts)) },
    { path: 'album.json', bytes: Buffer.from(`${JSON.stringify(album, null, 2)}\n`) },
  ];
}

/** Runs `work` over `files`, `concurrency` at a time, in order of completion. */
async function eachFile(files: AlbumFile[], concurrency: number, work: (f: AlbumFile) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < files.length) await work(files[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, files.length)) }, lane));
}

/** Writes the album into `dir` (created); returns the number of image files written. */
export async function writeAlbumFolder(dir: string, album: Album, read: ReadObject, opts: WriteOptions): Promise<number> {
  const files = albumFiles(album, opts);
  let done = 0;
  await eachFile(files, opts.concurrency ?? 4, async (f) => {
    const target = join(dir, f.path);
    await mkdir(dirname(target), { recursive: true });
    // Written aside and renamed: an interrupted run never leaves half an image under its real name.
    await writeFile(`${target}.part`, await read(f.path));
    await rename(`${target}.part`, target);
    opts.onFile?.(++done, files.length);
  });
  // The page last: a folder with an index.html is a finished album.
  for (const p of pages(album, opts)) await writeFile(join(dir, p.path), p.bytes);
  return files.length;
}

/** The bytes as a Buffer over the same memory (Buffer.from(Uint8Array) would copy every image once more). */
const asBuffer = (b: Uint8Array): Buffer => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** The zip method for an entry kept as it is (adm-zip deflates every entry it is given). */
const STORED = 0;

/**
 * The album as one .zip, built in memory (adm-zip cannot stream), so callers
 * bound its size first. Images are stored, not deflated: PNG and WebP are
 * compressed already.
 */
export async function albumZip(album: Album, read: ReadObject, opts: WriteOptions): Promise<Buffer> {
  const zip = new AdmZip();
  const files = albumFiles(album, opts);
  const bytes = new Map<string, Uint8Array>();
  let done = 0;
  await eachFile(files, opts.concurrency ?? 4, async (f) => {
    bytes.set(f.path, await read(f.path));
    opts.onFile?.(++done, files.length);
  });
  for (const p of pages(album, opts)) zip.addFile(p.path, p.bytes);
  // In album order, whatever order the reads finished in.
  for (const f of files) zip.addFile(f.path, asBuffer(bytes.get(f.path)!)).header.method = STORED;
  return zip.toBuffer();
}
