/**
 * The cache folder on disk:
 *
 *   {dir}/{hash}/…           a model's files, exactly as in the bucket (what backends are given)
 *   {dir}/.meta/{hash}.json  its manifest and each file's stamp when verified (file-stamp.ts); mtime = last use
 *   {dir}/.tmp/              downloads in progress (emptied at start)
 *   {dir}/.trash/            folders on their way out (emptied at start)
 *
 * A model folder counts only with its meta file: the meta is written after
 * the folder is renamed into place, so a crash in between leaves a folder
 * that the next start deletes rather than trusts.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { localFilePath } from './fetch-model.js';
import { sha256File } from '@nightshift/common';
import { fileStampSchema, isRacy, sameFile, stampOf, timestampsAreFine, type FileStamp } from './file-stamp.js';
import { parseManifest, type ModelManifest } from './manifest.js';

export interface CachedModel {
  manifest: ModelManifest;
  /** Each file's stamp when its sha256 was last checked (absent: check it). */
  stamps: Record<string, FileStamp>;
  /** When it was last used (the meta file's mtime across restarts). */
  lastUsedMs: number;
}

/** Stamps in an older format (size + mtime only) are dropped: those files are hashed at their next check. */
const metaSchema = z.object({ manifest: z.unknown(), stamps: z.record(z.string(), z.unknown()) });

function validStamps(raw: Record<string, unknown>): Record<string, FileStamp> {
  const out: Record<string, FileStamp> = {};
  for (const [path, s] of Object.entries(raw)) {
    const r = fileStampSchema.safeParse(s);
    if (r.success) out[path] = r.data;
  }
  return out;
}

export class CacheDisk {
  readonly metaDir: string;
  readonly tmpDir: string;
  readonly trashDir: string;
  /** Whether this folder's timestamps are fine-grained (probed once); coarse ones make a fresh stamp untrusted. */
  private fine?: Promise<boolean>;

  /** `fineTimestamps`: what the folder's timestamps are, when known (tests of the coarse case); probed otherwise. */
  constructor(
    readonly dir: string,
    fineTimestamps?: boolean,
  ) {
    if (fineTimestamps !== undefined) this.fine = Promise.resolve(fineTimestamps);
    this.metaDir = join(dir, '.meta');
    this.tmpDir = join(dir, '.tmp');
    this.trashDir = join(dir, '.trash');
  }

  modelDir(hash: string): string {
    return join(this.dir, hash);
  }

  private metaFile(hash: string): string {
    return join(this.metaDir, `${hash}.json`);
  }

  /**
   * Drops leftovers of an earlier run and returns what is cached. A cache
   * folder that does not exist yet stays so until the first download
   * (prepare), so a node that never pulls a model leaves nothing behind.
   */
  async open(): Promise<CachedModel[]> {
    if (!(await stat(this.dir).catch(() => undefined))) return [];
    await rm(this.tmpDir, { recursive: true, force: true });
    await rm(this.trashDir, { recursive: true, force: true });
    await this.prepare();
    const found: CachedModel[] = [];
    const withMeta = new Set<string>();
    for (const name of await readdir(this.metaDir)) {
      const hash = name.replace(/\.json$/, '');
      try {
        const st = await stat(this.modelDir(hash));
        if (!st.isDirectory()) throw new Error('not a folder');
        const raw = metaSchema.parse(JSON.parse(await readFile(join(this.metaDir, name), 'utf8')));
        const metaStat = await stat(join(this.metaDir, name));
        found.push({ manifest: parseManifest(raw.manifest, hash), stamps: validStamps(raw.stamps), lastUsedMs: metaStat.mtimeMs });
        withMeta.add(hash);
      } catch {
        await rm(join(this.metaDir, name), { force: true });
      }
    }
    for (const name of await readdir(this.dir)) {
      if (name.startsWith('.') || withMeta.has(name)) continue;
      if (/^[0-9a-f]{64}$/.test(name)) await this.discard(this.modelDir(name));
    }
    return found;
  }

  /** Makes the cache's folders (before a download). */
  async prepare(): Promise<void> {
    for (const d of [this.metaDir, this.tmpDir, this.trashDir]) await mkdir(d, { recursive: true });
  }

  /** Moves a freshly downloaded folder into place (replacing a corrupt copy), then records its stamps. */
  async install(manifest: ModelManifest, downloaded: string): Promise<CachedModel> {
    const final = this.modelDir(manifest.hash);
    await rm(this.metaFile(manifest.hash), { force: true });
    await this.discard(final);
    await rename(downloaded, final);
    const model: CachedModel = { manifest, stamps: await this.stampsOf(manifest, final), lastUsedMs: Date.now() };
    await this.writeMeta(model);
    return model;
  }

  async writeMeta(model: CachedModel): Promise<void> {
    const tmp = join(this.tmpDir, `meta-${randomUUID()}.json`);
    await writeFile(tmp, JSON.stringify({ manifest: model.manifest, stamps: model.stamps }));
    await rename(tmp, this.metaFile(model.manifest.hash));
  }

  async touch(hash: string): Promise<void> {
    const now = new Date();
    await utimes(this.metaFile(hash), now, now).catch(() => undefined);
  }

  async remove(hash: string): Promise<void> {
    await rm(this.metaFile(hash), { force: true });
    await this.discard(this.modelDir(hash));
  }

  /** Renames a folder into the trash (instant, so the name is free at once), then deletes it. */
  private async discard(folder: string): Promise<void> {
    const gone = join(this.trashDir, randomUUID());
    try {
      await rename(folder, gone);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    await rm(gone, { recursive: true, force: true });
  }

  /** The downloaded files' stamps: their bytes were hashed as they were written (fetch-model.ts). */
  private async stampsOf(manifest: ModelManifest, folder: string): Promise<Record<string, FileStamp>> {
    const stamps: Record<string, FileStamp> = {};
    for (const f of manifest.files) {
      const st = await stampOf(localFilePath(folder, f.path));
      if (st) stamps[f.path] = st;
    }
    return stamps;
  }

  /** Whether a stamp whose file matches it can stand for a hash: not when it is racy on a folder with coarse timestamps. */
  private async trusted(stamp: FileStamp): Promise<boolean> {
    if (!isRacy(stamp)) return true;
    this.fine ??= timestampsAreFine(this.metaDir).catch(() => false);
    return this.fine;
  }

  /**
   * Whether the cached files still are the model. Cheap by default: a file
   * whose size, mtime, ctime, inode and device match its stamp is trusted
   * (nothing has written to it since it was hashed), any other is re-hashed.
   * `full` re-hashes every file (the first use after a start, or when asked).
   * Files that hash right get a fresh stamp, taken before they were read; one
   * that changed while it was being read fails the check.
   */
  async check(model: CachedModel, full: boolean, onBytes?: (n: number) => void): Promise<boolean> {
    const folder = this.modelDir(model.manifest.hash);
    let changed = false;
    for (const f of model.manifest.files) {
      const path = localFilePath(folder, f.path);
      const now = await stampOf(path);
      if (!now || now.size !== f.size) return false;
      const stamp = model.stamps[f.path];
      if (!full && stamp && sameFile(stamp, now) && (await this.trusted(stamp))) continue;
      if ((await sha256File(path, onBytes)) !== f.sha256) return false;
      const after = await stampOf(path);
      if (!after || !sameFile(now, after)) return false;
      model.stamps[f.path] = now;
      changed = true;
    }
    if (changed) await this.writeMeta(model);
    return true;
  }
}
