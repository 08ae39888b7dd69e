/**
 * Running generators as another user (node config `user:`). A generator
 * running as the node's own user can read the node's secrets (its token,
 * the S3 keys) from /proc/$PPID/environ; as another user it cannot. The node
 * must run as root to switch users; the job folder is handed to that user.
 */
import { readFileSync } from 'node:fs';
import { chown } from 'node:fs/promises';
import { RenderFailure } from './backend.js';

export interface RunAs {
  name: string;
  uid: number;
  gid: number;
}

/** A user from /etc/passwd (by name or uid); undefined when there is none. */
export function lookupUser(user: string, passwd = '/etc/passwd'): RunAs | undefined {
  for (const line of readFileSync(passwd, 'utf8').split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (!name || uid === undefined || gid === undefined) continue;
    if (name === user || uid === user) return { name, uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

/** The user a generator runs as, checked now: a config that cannot be honoured fails the job clearly. */
export function resolveRunAs(user: string | undefined, what: string): RunAs | undefined {
  if (user === undefined) return undefined;
  const found = lookupUser(user);
  if (!found) throw new RenderFailure(`${what} is configured to run as user "${user}", which does not exist on this machine`);
  if (process.getuid?.() !== 0 && process.getuid?.() !== found.uid) {
    throw new RenderFailure(`${what} is configured to run as user "${user}", but the node is not running as root and cannot switch users`);
  }
  return found;
}

/** Gives the job's files to the generator's user (the folder is private to the node's user otherwise). */
export async function handOver(files: string[], runAs: RunAs | undefined): Promise<void> {
  if (!runAs) return;
  for (const f of files) await chown(f, runAs.uid, runAs.gid).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
}
