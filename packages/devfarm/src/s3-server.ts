/**
 * The local S3-compatible server (s3rver, DESIGN.md) as a child process, so
 * tests can stop and restart it like a real outage. Objects persist in `dir`.
 */
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from './ports.js';
import { startProcess, type ManagedProcess } from './process.js';

export interface S3Server {
  endpoint: string;
  port: number;
  accessKey: string;
  secretKey: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

const MAIN = fileURLToPath(new URL('./s3-server-main.ts', import.meta.url));

export async function startS3Server(dir: string, opts: { port?: number; logFile?: string } = {}): Promise<S3Server> {
  mkdirSync(dir, { recursive: true });
  const port = opts.port ?? (await freePort());
  let proc: ManagedProcess | undefined;
  const server: S3Server = {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    accessKey: 'S3RVER',
    secretKey: 'S3RVER',
    async start() {
      proc = startProcess('s3rver', process.execPath, ['--import', 'tsx', MAIN, String(port), dir], opts.logFile ? { logFile: opts.logFile } : {});
      await waitFor(`s3rver on ${port}`, async () => {
        if (proc!.child.exitCode !== null) throw new Error(`s3rver exited: ${proc!.output()}`);
        const res = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
        return res !== undefined;
      });
    },
    async stop() {
      await proc?.stop();
    },
  };
  await server.start();
  return server;
}
