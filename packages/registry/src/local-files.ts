/**
 * The files of a model on local disk: a folder (every regular file under it,
 * recursively, symlinks followed) or a single file (its base name is its path).
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { assertModelFilePath } from '@nightshift/common';

export interface LocalFile {
  /** The model-relative path, '/'-separated. */
  path: string;
  /** Where it is on this machine. */
  abs: string;
  size: number;
}

export async function listLocalFiles(localPath: string): Promise<LocalFile[]> {
  const top = await stat(localPath);
  if (top.isFile()) return [{ path: assertModelFilePath(basename(localPath)), abs: localPath, size: top.size }];
  if (!top.isDirectory()) throw new Error(`${localPath} is neither a file nor a folder`);
  const out: LocalFile[] = [];
  const walk = async (dir: string, rel: string[]): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const abs = join(dir, name);
      const st = await stat(abs);
      if (st.isDirectory()) await walk(abs, [...rel, name]);
      else if (st.isFile()) out.push({ path: assertModelFilePath([...rel, name].join('/')), abs, size: st.size });
    }
  };
  await walk(localPath, []);
  if (!out.length) throw new Error(`${localPath} holds no files`);
  return out;
}
