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
  url: string;
  port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
}

function tcpReady(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

export async function startNatsServer(dir: string, opts: { port?: number; echo?: boolean; logFile?: string } = {}): Promise<NatsServer> {
  const bin = natsServerBinary();
  const port = opts.port ?? (await freePort());
  const storeDir = join(dir, 'jetstream');
  mkdirSync(storeDir, { recursive: true });
  let proc: ManagedProcess | undefined;
  const server: NatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    async start() {
      proc = startProcess('nats-server', bin, ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir], {
        ...(opts.logFile ? { logFile: opts.logFile } : {}),
      });
      await waitFor(`nats-server on ${port}`, async () => {
        if (proc!.child.exitCode !== null) throw new Error(`nats-server exited: ${proc!.output()}`);
        return tcpReady(port);
      });
    },
    async stop() {
      await proc?.stop();
    },
  };
  await server.start();
  return server;
}
