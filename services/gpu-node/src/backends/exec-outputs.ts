/**
 * A job's files on disk: its private temp folder (where {output}, {preview}
 * and {params} point), the parameters file, and the output image read back
 * and checked (or converted) to PNG.
 */
import { mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { hasPngSignature } from '@nightshift/common';
import { RenderFailure, type RenderRequest } from './backend.js';

export interface JobFolder {
  dir: string;
  output: string;
  preview: string;
  params: string;
}

/** Runs `fn` with a fresh job folder under `tmpDir` (the OS temp folder by default), removed afterwards. */
export async function withJobFolder<T>(tmpDir: string | undefined, fn: (folder: JobFolder) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpDir ?? os.tmpdir(), 'nightshift-exec-'));
  try {
    return await fn({ dir, output: path.join(dir, 'output.png'), preview: path.join(dir, 'preview.png'), params: path.join(dir, 'params.json') });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Writes the job's parameters where {params} points (private to the node's user: prompts may be private). */
export async function writeParamsFile(folder: JobFolder, req: RenderRequest, model: string): Promise<void> {
  const doc = { jobId: req.jobId, renderKey: req.renderKey, prompt: req.prompt, seed: req.seed, model, output: folder.output, preview: folder.preview, params: req.params };
  await writeFile(folder.params, JSON.stringify(doc, null, 2) + '\n', { mode: 0o600 });
}

/**
 * The image the generator wrote, as PNG bytes: at the path it announced
 * (relative to its working folder), else at {output}. `what` names the
 * generator and `log` is its log, for the failure when there is none.
 */
export async function readOutput(announced: string | undefined, cwd: string, folder: JobFolder, what: string, log: string): Promise<Buffer> {
  const outputPath = announced ? path.resolve(cwd, announced) : folder.output;
  const inside = await insideJobFolder(folder, outputPath);
  if (inside === undefined) throw new RenderFailure(`${what} exited 0 but wrote no output image (expected ${outputPath})`, log);
  if (!inside) throw escaped(what, 'output', announced ?? outputPath, folder);
  return toPng(await readFile(outputPath), what, log);
}

/**
 * Whether `file` (symlinks followed) lies inside the job's folder; undefined
 * when it does not exist. A generator reads and writes where it likes, but
 * the node uploads only what is inside: an announced `/etc/shadow` or a
 * symlink to the node's secrets must not become someone's image.
 */
export async function insideJobFolder(folder: JobFolder, file: string): Promise<boolean | undefined> {
  const real = await realpath(file).catch(() => undefined);
  if (real === undefined) return undefined;
  const dir = await realpath(folder.dir);
  return real.startsWith(dir + path.sep);
}

/** The failure for an announced file outside the job folder. */
export function escaped(what: string, kind: 'output' | 'preview', announced: string, folder: JobFolder): RenderFailure {
  return new RenderFailure(`${what} announced its ${kind} at ${announced}, which is outside the job's folder: write it where {${kind}} points (${folder[kind]})`);
}

const PNG_IEND = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);

/** The generator's output as PNG bytes (JPEG/WebP outputs are converted). */
async function toPng(bytes: Buffer, what: string, log: string): Promise<Buffer> {
  try {
    if (hasPngSignature(bytes)) {
      // A truncated file (a generator killed mid-write) is caught here, with the log, rather than later in the worker.
      if (!bytes.subarray(bytes.length - 12).equals(PNG_IEND)) throw new Error('PNG is truncated (no IEND chunk at the end)');
      await sharp(bytes).metadata();
      return bytes;
    }
    return await sharp(bytes).png().toBuffer();
  } catch (err) {
    throw new RenderFailure(`${what} wrote an output that is not a readable image: ${err instanceof Error ? err.message : String(err)}`, log);
  }
}
