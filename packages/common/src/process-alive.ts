/**
 * Whether a process is still there, for pid files and process-group records.
 * Signal 0 checks existence without disturbing it; a process owned by
 * another user answers EPERM, which still means it exists.
 */
import { readFileSync } from 'node:fs';

/** True while `pid` exists (a negative pid: while its process group has a member). */
export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True while `pid` runs and is not a zombie; where /proc cannot say (not Linux), signal 0 decides. */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || !pidExists(pid)) return false;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return pidExists(pid);
  }
  // The command name (field 2) may hold spaces and parentheses: the state follows the last ')'.
  return stat.charAt(stat.lastIndexOf(')') + 2) !== 'Z';
}
