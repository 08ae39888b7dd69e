/**
 * Runs one generator process in its own process group (detached), so
 * cancellation and timeouts reach everything it started: SIGTERM to the
 * group, SIGKILL after a grace period. Members that outlive the generator are
 * stopped the same way after a normal exit too. Never through a shell: argv
 * goes to the OS as it is.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { pidExists, sleep } from '@nightshift/common';
import { RenderFailure } from './backend.js';
import type { ChildGroups } from './child-groups.js';

export interface GroupRunOptions {
  /** Names the program in errors, e.g. `generator "sdxl"`. */
  label: string;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Run as this user and group (the node runs as root). */
  uid?: number | undefined;
  gid?: number | undefined;
  timeoutMs: number;
  /** Time between SIGTERM and SIGKILL. */
  killGraceMs: number;
  /** Aborting stops the group. */
  signal: AbortSignal;
  onStdout(chunk: string): void;
  onStderr(chunk: string): void;
  /** The runner's own remarks for the job's log (timeout, leftover processes). */
  note(line: string): void;
  /** Records the group while it runs, so a restarted node can stop one a crash left behind. */
  childGroups?: ChildGroups | undefined;
  /** Holds the group's stop function while it runs (the backend stops them all on close). */
  running: Set<() => Promise<void>>;
}

export interface GroupExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  aborted: boolean;
}

/**
 * Whether any process of group `pgid` is still running. A killed member is a
 * zombie until something reaps it (in a container nothing may), and
 * kill(-pgid, 0) counts zombies: /proc tells them apart. Where /proc cannot
 * be read, any member counts.
 */
function groupHasLiveMembers(pgid: number): boolean {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return pidExists(-pgid);
  }
  for (const d of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // After the command name (which may hold spaces and parentheses): state, ppid, pgrp.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z') return true;
  }
  return false;
}

/** How long a SIGKILLed group may take to die before the job goes on without it (it cannot refuse; it can be stuck in the kernel). */
const KILLED_WAIT_MS = 2_000;

/**
 * Spawns argv and resolves once the group is gone and its output read (or a
 * second after, when a detached grandchild keeps the pipes open). Rejects
 * only when the program cannot be started at all.
 */
export function runProcessGroup(argv: readonly string[], o: GroupRunOptions): Promise<GroupExit> {
  return new Promise<GroupExit>((resolve, reject) => {
    let timedOut = false;
    let aborted = false;

    const ids = o.uid === undefined ? {} : { uid: o.uid, gid: o.gid ?? o.uid };
    const child = spawn(argv[0]!, argv.slice(1), { cwd: o.cwd, env: o.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'], ...ids });
    const pid = child.pid;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.once('exit', (code, sig) => res({ code, signal: sig })));
    child.once('error', (err) => {
      // spawn failures (ENOENT, EACCES) come here, with no process to wait for.
      if (pid === undefined) reject(new RenderFailure(`could not start ${o.label} (${argv[0]}): ${err.message}`));
    });
    if (pid === undefined) return;
    o.childGroups?.record(pid);

    const killGroup = (sig: NodeJS.Signals) => {
      try {
        process.kill(-pid, sig);
      } catch {
        // ESRCH: the group is already gone.
      }
    };
    const groupAlive = () => pidExists(-pid) && groupHasLiveMembers(pid);
    let stopping: Promise<void> | undefined;
    /** SIGTERM the group, wait for it to go (up to the grace period), then SIGKILL whatever is left. */
    const stopGroup = () =>
      (stopping ??= (async () => {
        killGroup('SIGTERM');
        const deadline = Date.now() + o.killGraceMs;
        while (groupAlive() && Date.now() < deadline) await sleep(25);
        if (!groupAlive()) return;
        killGroup('SIGKILL');
        // SIGKILL is delivered, not done: wait until the members are dead, so "stopped" means gone.
        const killedBy = Date.now() + KILLED_WAIT_MS;
        while (groupAlive() && Date.now() < killedBy) await sleep(10);
      })());
    const stop = async () => {
      await stopGroup();
      await exited;
    };
    o.running.add(stop);

    const onAbort = () => {
      aborted = true;
      void stopGroup();
    };
    o.signal.addEventListener('abort', onAbort, { once: true });
    if (o.signal.aborted) onAbort(); // aborted while the job folder was being prepared
    const timer = setTimeout(() => {
      timedOut = true;
      o.note(`[nightshift] timeout after ${o.timeoutMs} ms: stopping the generator's process group`);
      void stopGroup();
    }, o.timeoutMs);

    child.stdout.setEncoding('utf8').on('data', (c: string) => o.onStdout(c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => o.onStderr(c));
    const streamsDone = Promise.all([new Promise((r) => child.stdout.once('close', r)), new Promise((r) => child.stderr.once('close', r))]);

    void (async () => {
      const { code, signal: sig } = await exited;
      clearTimeout(timer);
      o.signal.removeEventListener('abort', onAbort);
      // Members that outlive the generator (a forgotten worker, a pipe holder) are stopped too.
      if (groupAlive()) {
        if (!stopping) o.note('[nightshift] the generator left processes running in its group; stopping them');
        await stopGroup();
      }
      // The pipes close once every holder has gone; a detached grandchild
      // that kept them open (it left the group) must not hold up the job.
      await Promise.race([streamsDone, sleep(1_000)]);
      o.childGroups?.forget(pid);
      o.running.delete(stop);
      resolve({ code, signal: sig, timedOut, aborted });
    })();
  });
}
