/**
 * The local S3-compatible server (s3rver; docs/design.md "Architecture") as a child process, so
 * tests can stop and restart it like a real outage. Objects persist in `dir`.
 */
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from './ports.js';
import { startProcess, type ManagedProcess } from './process.js';
import type { ServerPlacement } from './nats-server.js';

export interface S3Server {
  /** The endpoint services use. */
  endpoint: string;
  /** The endpoint this process uses (differs when the server runs in another network namespace). */
  reachEndpoint: string;
  port: number;
  accessKey: string;
  secretKey: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Stops it at once (SIGKILL), cutting transfers under way: a crash or a pulled cable, where stop() lets s3rver close. */
  kill(): Promise<void>;
}

const MAIN = fileURLToPath(new URL('./s3-server-main.ts', import.meta.url));

/** `accessLog`: a file every GET is appended to as a JSON line (s3-server-main.ts). */
/** `bytesPerSecond`: every GET's body is paced to this rate (tests that act mid-download). */
/** `startTimeoutMs`: how long (re)starting waits for it to answer (20 s). */
export async function startS3Server(dir: string, opts: ServerPlacement & { accessLog?: string; bytesPerSecond?: number; startTimeoutMs?: number } = {}): Promise<S3Server> {
  mkdirSync(dir, { recursive: true });
  const port = opts.port ?? (await freePort());
  let proc: ManagedProcess | undefined;
  const host = opts.host ?? '127.0.0.1';
  const probe = opts.probe ?? { host, port };
  const server: S3Server = {
    endpoint: `http://${host}:${port}`,
    reachEndpoint: `http://${probe.host}:${probe.port}`,
    port,
    accessKey: 'S3RVER',
    secretKey: 'S3RVER',
    async start() {
      proc = startProcess('s3rver', process.execPath, ['--import', 'tsx', MAIN, String(port), dir, opts.bind ?? '127.0.0.1', ...(opts.accessLog ? [opts.accessLog] : [])], {
        ...(opts.logFile ? { logFile: opts.logFile } : {}),
        ...(opts.bytesPerSecond ? { env: { ...process.env, NIGHTSHIFT_S3_BYTES_PER_S: String(opts.bytesPerSecond) } } : {}),
        prefix: opts.prefix,
      });
      try {
        await waitFor(`s3rver on ${port}`, async () => {
          if (proc!.child.exitCode !== null) throw new Error(`s3rver exited: ${proc!.output()}`);
          const res = await fetch(`${server.reachEndpoint}/`).catch(() => undefined);
          return res !== undefined;
        }, opts.startTimeoutMs);
      } catch (err) {
        // One that never answered is stopped (left running, it kept a failed test file alive until its timeout),
        // and what it printed goes with the error.
        const output = proc.output().slice(-2_000);
        await proc.stop();
        throw new Error(`${err instanceof Error ? err.message : String(err)} (s3rver printed: ${output.trim() || 'nothing'})`, { cause: err });
      }
    },
    async stop() {
      await proc?.stop();
    },
    async kill() {
      await proc?.kill9();
    },
  };
  await server.start();
  return server;
}
