/**
 * What a cached file looked like when its sha256 was last checked: size,
 * mtime, ctime, inode and device, to the nanosecond. A write that restores
 * the mtime afterwards (utimes, `touch -r`) still moves the ctime, which no
 * unprivileged call can set back; replacing the file changes the inode. So a
 * file whose stamp is unchanged holds the bytes that were hashed, and only a
 * changed one needs reading again.
 *
 * One gap, git's "racy clean" problem: on a kernel that keeps coarse
 * timestamps (one clock tick, ~4–10 ms), a write in the same tick as the
 * stamp leaves the ctime as it was. A stamp taken less than RACY_NS after its
 * file's ctime is therefore not trusted there (the next check hashes the file
 * again and takes a new one). Kernels with fine-grained ("multigrain")
 * timestamps give every change after a stat a newer ctime; `timestampsAreFine`
 * tells which one a folder has, by probing it.
 */
import { randomUUID } from 'node:crypto';
import { open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

export const fileStampSchema = z.object({
  size: z.number(),
  mtimeNs: z.string(),
  ctimeNs: z.string(),
  ino: z.string(),
  dev: z.string(),
  /** Wall-clock time the stamp was taken (ns), to tell a racy stamp. */
  takenNs: z.string(),
});

export type FileStamp = z.infer<typeof fileStampSchema>;

/** Longer than any coarse timestamp tick (HZ=100 gives 10 ms), with room to spare. */
export const RACY_NS = 50_000_000n;

/** The stamp of a regular file now, or undefined when there is none. */
export async function stampOf(path: string): Promise<FileStamp | undefined> {
  const takenNs = BigInt(Date.now()) * 1_000_000n;
  const st = await stat(path, { bigint: true }).catch(() => undefined);
  if (!st?.isFile()) return undefined;
  return { size: Number(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs), ino: String(st.ino), dev: String(st.dev), takenNs: String(takenNs) };
}

/** Whether two stamps describe the same unchanged file (the time each was taken aside). */
export function sameFile(a: FileStamp, b: FileStamp): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino && a.dev === b.dev;
}

/** Taken so soon after the file's last change that, with coarse timestamps, a later change could leave it as it is. */
export function isRacy(s: FileStamp): boolean {
  return BigInt(s.ctimeNs) + RACY_NS > BigInt(s.takenNs);
}

/**
 * Whether changes to files in `dir` always move their ctime past one just
 * read (fine-grained timestamps): a few stat → write → stat rounds on a probe
 * file, all within one coarse tick, each of which must see a new ctime.
 */
export async function timestampsAreFine(dir: string, rounds = 8): Promise<boolean> {
  const probe = join(dir, `probe-${randomUUID()}`);
  const fh = await open(probe, 'w');
  try {
    for (let i = 0; i < rounds; i++) {
      const before = await fh.stat({ bigint: true });
      await fh.write(Buffer.from([i]), 0, 1, 0);
      const after = await fh.stat({ bigint: true });
      if (after.ctimeNs === before.ctimeNs) return false;
    }
    return true;
  } finally {
    await fh.close();
    await rm(probe, { force: true });
  }
}
