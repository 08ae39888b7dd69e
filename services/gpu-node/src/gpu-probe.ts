/**
 * Is another program using the GPU (node config `idleOnly`)? Asks
 * `nvidia-smi --query-compute-apps` when it is on the PATH; the node itself
 * and its generators (its descendants, read from /proc) do not count.
 * Without nvidia-smi nothing can be seen, so the GPU counts as idle.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';

export interface GpuProcess {
  pid: number;
  name: string;
}

export type GpuProbe = () => Promise<GpuProcess[]>;

export interface GpuProbeOptions {
  /** Environment for nvidia-smi (its PATH decides which one runs); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** The node's pid: it and its descendants are the node's own work. */
  ownPid?: number;
  timeoutMs?: number;
  /** Told once when nvidia-smi is missing or fails, so the owner knows idleOnly sees nothing. */
  onUnavailable?: (why: string) => void;
}

/** "1234, /usr/bin/game" lines → processes (malformed lines are skipped). */
export function parseComputeApps(text: string): GpuProcess[] {
  return text
    .split('\n')
    .map((line) => /^\s*(\d+)\s*,\s*(.*?)\s*$/.exec(line))
    .filter((m): m is RegExpExecArray => !!m)
    .map((m) => ({ pid: Number(m[1]), name: m[2]! }));
}

/** The parent pid from /proc/PID/stat; undefined where /proc is not there (not Linux) or the process is gone. */
async function parentOf(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ')'.
  const ppid = stat ? Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) : NaN;
  return Number.isInteger(ppid) ? ppid : undefined;
}

async function isDescendant(pid: number, root: number): Promise<boolean> {
  for (let p: number | undefined = pid, hops = 0; p !== undefined && p > 1 && hops < 64; hops++) {
    if (p === root) return true;
    p = await parentOf(p);
  }
  return false;
}

/** A probe returning the foreign processes on the GPU ([] when idle or when nvidia-smi cannot tell). */
export function nvidiaSmiProbe(opts: GpuProbeOptions = {}): GpuProbe {
  const ownPid = opts.ownPid ?? process.pid;
  let warned = false;
  const unavailable = (why: string): GpuProcess[] => {
    if (!warned) opts.onUnavailable?.(why);
    warned = true;
    return [];
  };
  return async () => {
    const out = await new Promise<{ ok: true; text: string } | { ok: false; why: string }>((resolve) =>
      execFile('nvidia-smi', ['--query-compute-apps=pid,process_name', '--format=csv,noheader'], { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 5_000 }, (err, stdout) =>
        resolve(err ? { ok: false, why: (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'nvidia-smi is not on the PATH' : `nvidia-smi failed: ${err.message}` } : { ok: true, text: stdout }),
      ),
    );
    if (!out.ok) return unavailable(out.why);
    const apps = parseComputeApps(out.text);
    const own = await Promise.all(apps.map((a) => isDescendant(a.pid, ownPid)));
    return apps.filter((_, i) => !own[i]);
  };
}
