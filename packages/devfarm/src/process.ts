/**
 * Child processes for local servers and services: started with an argv array
 * (never a shell), output kept in a ring buffer for failure messages, and
 * stopped politely with SIGTERM, then SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';

export interface ManagedProcess {
  name: string;
  child: ChildProcess;
  /** Last lines of combined stdout/stderr. */
  output(): string;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
  kill9(): Promise<void>;
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  logFile?: string;
  /** Also echo output to this process's stderr (for `up`). */
  echo?: boolean;
  /** Run through this command, e.g. ['ip', 'netns', 'exec', 'host1'] (it must exec the rest, so signals reach it). */
  prefix?: string[] | undefined;
}

export function startProcess(name: string, cmd: string, args: string[], opts: StartOptions = {}): ManagedProcess {
  const [exe, ...argv] = [...(opts.prefix ?? []), cmd, ...args] as [string, ...string[]];
  const child = spawn(exe, argv, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let log: WriteStream | undefined;
  if (opts.logFile) log = createWriteStream(opts.logFile, { flags: 'a' });
  const onData = (buf: Buffer) => {
    log?.write(buf);
    if (opts.echo) process.stderr.write(buf);
    for (const line of buf.toString('utf8').split('\n')) if (line) lines.push(line);
    if (lines.length > 400) lines.splice(0, lines.length - 400);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      log?.end();
      resolve(code);
    }),
  );
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    name,
    child,
    output: () => lines.join('\n'),
    exited,
    async stop(signal = 'SIGTERM', graceMs = 5_000) {
      if (!alive()) return;
      child.kill(signal);
      const timer = setTimeout(() => alive() && child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
    async kill9() {
      if (!alive()) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

// Tests ask the farm's face for it; it lives with the services' own process checks.
export { processAlive } from '@nightshift/common';
