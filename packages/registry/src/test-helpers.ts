/** Shared by the registry's tests: a real s3rver, a bucket, and counters on the client's object calls. */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Storage } from '@nightshift/common';
import { startS3Server, tempDir, type S3Server } from '@nightshift/devfarm';

export interface TestBucket {
  s3: S3Server;
  storage: Storage;
  dir: string;
  /** Object calls per kind since the last reset (keys of model files only; `manifests`: manifest GETs). */
  calls: { puts: string[]; gets: string[]; manifests: string[] };
  /** Delay per downloaded chunk of a model file (0: none), so a test can act mid-download. */
  throttle: { msPerChunk: number };
  stop(): Promise<void>;
}

export async function startTestBucket(): Promise<TestBucket> {
  const tmp = tempDir('nightshift-registry-');
  const s3 = await startS3Server(join(tmp.dir, 's3'));
  const storage = new Storage({ endpoint: s3.endpoint, accessKey: s3.accessKey, secretKey: s3.secretKey, bucket: 'nightshift' });
  await storage.ensureBucket();
  const calls = { puts: [] as string[], gets: [] as string[], manifests: [] as string[] };
  const throttle = { msPerChunk: 0 };
  const client = storage.client;
  const put = client.putObject.bind(client);
  const get = client.getObject.bind(client);
  // Counting wrappers: the tests assert how many transfers happened.
  client.putObject = ((bucket: string, key: string, ...rest: unknown[]) => {
    if (key.includes('/files/')) calls.puts.push(key);
    return (put as (...a: unknown[]) => ReturnType<typeof put>)(bucket, key, ...rest);
  }) as typeof client.putObject;
  client.getObject = (async (bucket: string, key: string, ...rest: unknown[]) => {
    if (key.endsWith('/manifest.json')) calls.manifests.push(key);
    if (!key.includes('/files/')) return (get as (...a: unknown[]) => ReturnType<typeof get>)(bucket, key, ...rest);
    calls.gets.push(key);
    const body: Readable = await (get as (...a: unknown[]) => ReturnType<typeof get>)(bucket, key, ...rest);
    if (!throttle.msPerChunk) return body;
    const slow = new Transform({ transform: (chunk: Buffer, _e, done) => void setTimeout(() => done(null, chunk), throttle.msPerChunk) });
    // pipeline carries a cut connection's error on to the reader.
    pipeline(body, slow).catch(() => undefined);
    return slow;
  }) as typeof client.getObject;
  return {
    s3,
    storage,
    dir: tmp.dir,
    calls,
    throttle,
    async stop() {
      await s3.stop();
      tmp.cleanup();
    },
  };
}

/** Writes a model folder: path → content. */
export function writeModel(root: string, files: Record<string, string | Buffer>): string {
  for (const [path, body] of Object.entries(files)) {
    const abs = join(root, ...path.split('/'));
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, body);
  }
  return root;
}

/**
 * Flips one byte of `path` in place. `hideMtime` sets the mtime back to the
 * nanosecond afterwards (`touch -d @s.ns`; Node's utimes rounds it), so only
 * the ctime tells the write happened.
 */
export function flipByte(path: string, offset: number, hideMtime: boolean): void {
  const before = statSync(path, { bigint: true });
  const fd = openSync(path, 'r+');
  try {
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, offset);
    writeSync(fd, Buffer.from([byte[0]! ^ 0xff]), 0, 1, offset);
  } finally {
    closeSync(fd);
  }
  if (!hideMtime) return;
  const ns = before.mtimeNs;
  execFileSync('touch', ['-m', '-d', `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`, path]);
  if (statSync(path, { bigint: true }).mtimeNs !== ns) throw new Error(`could not set the mtime of ${path} back`);
}
