/**
 * Debian's nats-server with JetStream, on a loopback port, storing in a folder
 * of its own. Restartable on the same port and store, for outage tests.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import { freePort, waitFor } from './ports.js';
import { startProcess, type ManagedProcess } from './process.js';

export function natsServerBinary(): string {
  for (const candidate of [process.env.NATS_SERVER_BIN, '/usr/sbin/nats-server', '/usr/bin/nats-server', 'nats-server']) {
    if (!candidate) continue;
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' });
      return candidate;
    } catch {
      /* try the next one */
    }
  }
  throw new Error('nats-server not found: install the Debian package (apt-get install nats-server) or set NATS_SERVER_BIN');
}

export interface NatsServer {
  /** The URL services use. */
  url: string;
  /** The URL this process uses (differs when the server runs in another network namespace). */
  reachUrl: string;
  port: number;
  /** The user and password the server requires, when started with them. */
  auth: NatsUser | undefined;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** Ready when the server greets with INFO (a bare TCP connect could be a forwarder's). */
function natsReady(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(port, host);
    const done = (ok: boolean) => (s.destroy(), clearTimeout(t), resolve(ok));
    const t = setTimeout(() => done(false), 1_000);
    s.once('data', (b: Buffer) => done(b.toString('latin1').startsWith('INFO')));
    s.once('error', () => done(false));
    s.once('close', () => done(false));
  });
}

export interface NatsUser {
  user: string;
  password: string;
}

export interface ServerPlacement {
  port?: number;
  logFile?: string;
  /** Listen address (default 127.0.0.1; 0.0.0.0 inside a network namespace). */
  bind?: string;
  /** Address other hosts use to reach the server (default 127.0.0.1). */
  host?: string;
  /** Command prefix, e.g. ['ip', 'netns', 'exec', 'srv']. */
  prefix?: string[];
  /** Where this process reaches the server, when it cannot at host:port (a forwarder into the namespace). */
  probe?: { host: string; port: number };
}

/** `auth`: the server refuses clients without this user and password; `startTimeoutMs`: how long (re)starting waits for it (20 s). */
export async function startNatsServer(dir: string, opts: ServerPlacement & { echo?: boolean; auth?: NatsUser; startTimeoutMs?: number } = {}): Promise<NatsServer> {
  const bin = natsServerBinary();
  const port = opts.port ?? (await freePort());
  const storeDir = join(dir, 'jetstream');
  mkdirSync(storeDir, { recursive: true });
  let proc: ManagedProcess | undefined;
  const host = opts.host ?? '127.0.0.1';
  const probe = opts.probe ?? { host, port };
  const server: NatsServer = {
    url: `nats://${host}:${port}`,
    reachUrl: `nats://${probe.host}:${probe.port}`,
    port,
    auth: opts.auth,
    async start() {
      const auth = opts.auth ? ['--user', opts.auth.user, '--pass', opts.auth.password] : [];
      proc = startProcess('nats-server', bin, ['-js', '-a', opts.bind ?? '127.0.0.1', '-p', String(port), '-sd', storeDir, ...auth], {
        ...(opts.logFile ? { logFile: opts.logFile } : {}),
        prefix: opts.prefix,
      });
      try {
        await waitFor(`nats-server on ${port}`, async () => {
          if (proc!.child.exitCode !== null) throw new Error(`nats-server exited: ${proc!.output()}`);
          return natsReady(probe.host, probe.port);
        }, opts.startTimeoutMs);
      } catch (err) {
        // As for s3rver (s3-server.ts): one that never answered is stopped, and what it printed goes with the error.
        const output = proc.output().slice(-2_000);
        await proc.stop();
        throw new Error(`${err instanceof Error ? err.message : String(err)} (nats-server printed: ${output.trim() || 'nothing'})`, { cause: err });
      }
    },
    async stop() {
      await proc?.stop();
    },
  };
  await server.start();
  return server;
}
