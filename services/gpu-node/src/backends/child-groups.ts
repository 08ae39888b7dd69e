/**
 * Generators run in process groups of their own so that cancel can stop them
 * whole — which also means they outlive a gpu-node killed with SIGKILL, still
 * holding GPU memory. Each group is recorded in the node's data folder while
 * it runs; a node starting on the same folder stops what a crashed
 * predecessor left behind. The recorded start time (from /proc) makes sure a
 * recycled pid is never mistaken for an old generator.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pidExists } from '@nightshift/common';

/** Process start time in clock ticks since boot (/proc/PID/stat field 22), or undefined. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export class ChildGroups {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  record(pid: number): void {
    writeFileSync(join(this.dir, `${pid}.group`), startTime(pid) ?? '');
  }

  forget(pid: number): void {
    rmSync(join(this.dir, `${pid}.group`), { force: true });
  }

  /** SIGKILLs the groups a previous run of this node left behind; returns their leader pids. */
  reapLeftovers(): number[] {
    const reaped: number[] = [];
    for (const name of readdirSync(this.dir).filter((n) => /^\d+\.group$/.test(n))) {
      const pid = Number(name.split('.')[0]);
      const recorded = readFileSync(join(this.dir, name), 'utf8');
      const now = startTime(pid);
      // Leader gone: the group may live on without it, but then its pgid cannot be reused either.
      const ours = now === undefined ? pidExists(-pid) : now === recorded;
      if (ours && pidExists(-pid)) {
        try {
          process.kill(-pid, 'SIGKILL');
          reaped.push(pid);
        } catch {
          /* gone meanwhile */
        }
      }
      this.forget(pid);
    }
    return reaped;
  }
}
