/**
 * Writing a built-in model folder (or single-file model) from memory,
 * atomically and only when it differs: shared by the built-in models
 * (nightshift-tiny-clip, nightshift-tiny-sd, nightshift-tiny-aesthetic).
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** A model folder's files: relative path (with '/') → content. */
export type FolderFiles = ReadonlyMap<string, string | Uint8Array>;

/** Writes every file under `dir`, creating subfolders. */
export async function writeFolder(dir: string, files: FolderFiles): Promise<void> {
  for (const [rel, content] of files) {
    const file = path.join(dir, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
}

/** True when every file already has exactly these bytes. */
export async function isFolderCurrent(dir: string, files: FolderFiles): Promise<boolean> {
  for (const [rel, content] of files) {
    const onDisk = await readFile(path.join(dir, rel)).catch(() => undefined);
    if (!onDisk) return false;
    const want = typeof content === 'string' ? Buffer.from(content) : content;
    if (!onDisk.equals(want)) return false;
  }
  return true;
}

/**
 * Makes `target` hold exactly `files` (extra files in an existing folder are
 * left alone) and returns its absolute path. The build goes to a temporary
 * sibling and is renamed into place, so a reader never sees a half-written
 * folder and two processes ensuring at once both end with the same result.
 */
export async function ensureFolder(target: string, files: FolderFiles): Promise<string> {
  const dir = path.resolve(target);
  if (await isFolderCurrent(dir, files)) return dir;
  await mkdir(path.dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${randomUUID()}`;
  try {
    await writeFolder(tmp, files);
    for (let attempt = 0; ; attempt++) {
      try {
        await rename(tmp, dir); // atomic when the target is absent
        return dir;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      }
      // Something is in the way: another process's identical build (keep it),
      // or a stale folder (move it aside and try again).
      if (await isFolderCurrent(dir, files)) return dir;
      if (attempt >= 5) throw new Error(`could not replace ${dir}`);
      const old = `${dir}.old-${process.pid}-${randomUUID()}`;
      try {
        await rename(dir, old);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      await rm(old, { recursive: true, force: true });
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Makes `file` hold exactly `bytes` and returns its absolute path: written to
 * a temporary sibling and renamed (atomic on POSIX), so concurrent callers and
 * readers never see a partial file; nothing is written when it is current.
 */
export async function ensureFile(file: string, bytes: Uint8Array): Promise<string> {
  const target = path.resolve(file);
  const onDisk = await readFile(target).catch(() => undefined);
  if (onDisk?.equals(bytes)) return target;
  await mkdir(path.dirname(target), { recursive: true });
  const tmp = `${target}.tmp-${process.pid}-${randomUUID()}`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, target);
  } finally {
    await rm(tmp, { force: true });
  }
  return target;
}
