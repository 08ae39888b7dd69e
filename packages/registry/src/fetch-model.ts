/**
 * Downloads every file of a model into a fresh temp folder, hashing as it
 * writes (on a worker thread where there is a core to spare: hash-worker.ts), and checks each file's size and sha256 against the manifest. A
 * failed or corrupt attempt deletes its temp folder before the next one, so
 * nothing half-written survives; after the last attempt the error says which
 * model and why.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { modelFileKey, sleep } from '@nightshift/common';
import type { RegistryStorage } from './bucket.js';
import { streamHash } from './hash-worker.js';
import type { ModelManifest } from './manifest.js';
import type { OnProgress } from './progress.js';

export class ModelFetchError extends Error {
  constructor(
    readonly hash: string,
    message: string,
  ) {
    super(message);
    this.name = 'ModelFetchError';
  }
}

export interface FetchOptions {
  /** Tries in all (default 3). */
  attempts: number;
  /** Wait before the second try; doubles after each failure (default 1 s). */
  retryDelayMs: number;
  /** A download that receives nothing for this long is cut and retried (default 60 s): a hung connection never hangs a job. */
  stallMs: number;
  /** Hash on a worker thread (default: where the machine has OFF_THREAD_MIN_CORES cores or more; hash-worker.ts). */
  hashOffThread?: boolean;
}

/** Unhashed bytes a download may run ahead of its hash by. */
const MAX_UNHASHED = 64 * 1024 * 1024;

/** Where a model file lands under a folder: its '/'-separated path, checked by the manifest schema. */
export const localFilePath = (folder: string, path: string) => join(folder, ...path.split('/'));

async function downloadOnce(storage: RegistryStorage, m: ModelManifest, folder: string, stallMs: number, offThread: boolean | undefined, onBytes: (file: string, n: number) => void): Promise<void> {
  for (const f of m.files) {
    const dest = localFilePath(folder, f.path);
    await mkdir(dirname(dest), { recursive: true });
    const body = await storage.client.getObject(storage.bucket, modelFileKey(m.hash, f.path));
    const sha = streamHash(offThread);
    let size = 0;
    // One watchdog per file rather than a timer re-armed per chunk (thousands per file).
    let lastData = performance.now();
    const watchdog = setInterval(() => {
      if (performance.now() - lastData > stallMs) body.destroy(new Error(`${f.path}: no data for ${stallMs / 1000} s`));
    }, Math.max(10, stallMs / 4));
    // Hashed (on a worker thread, or inline) and counted as the bytes pass to the file, with no extra stream
    // hop: this is what keeps the download at the speed of a plain fGetObject (bench/model-fetch.ts).
    // The listener and the pipe are attached in the same tick, so neither misses a chunk.
    body.on('data', (chunk: Buffer) => {
      lastData = performance.now();
      sha.update(chunk);
      // A worker starved of CPU must not let unhashed bytes pile up in memory: the socket waits.
      // (If the pipe resumes it for the file's sake, the next chunk pauses it again.)
      if (sha.pending > MAX_UNHASHED) {
        body.pause();
        void sha.drained(MAX_UNHASHED / 4).then(() => body.resume());
      }
      size += chunk.length;
      onBytes(f.path, chunk.length);
      // An object longer than the manifest says is cut at once: a bad or hostile bucket cannot fill the disk past the cache's cap.
      if (size > f.size) body.destroy(new Error(`${f.path}: more than the ${f.size} bytes the manifest says (cut off)`));
    });
    try {
      // A 1 MiB buffer: with the default 16 KiB the socket is paused after nearly every chunk.
      await pipeline(body, createWriteStream(dest, { highWaterMark: 1 << 20 }));
    } catch (err) {
      sha.drop();
      throw err;
    } finally {
      clearInterval(watchdog);
    }
    if (size !== f.size) {
      sha.drop();
      throw new Error(`${f.path}: got ${size} bytes, the manifest says ${f.size} (a cut-off download)`);
    }
    const got = await sha.digest();
    if (got !== f.sha256) throw new Error(`${f.path}: sha256 ${got} does not match the manifest's ${f.sha256}`);
  }
}

export interface Fetched {
  folder: string;
  /** How long the attempt that succeeded took (requests and writes included): what a download rate is measured from. */
  ms: number;
}

/** Downloads `m` into a new folder under `tmpRoot` and returns it; retries a failed attempt from scratch. */
export async function fetchModel(storage: RegistryStorage, m: ModelManifest, tmpRoot: string, opts: FetchOptions, onProgress?: OnProgress): Promise<Fetched> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= opts.attempts; attempt++) {
    const folder = await mkdtemp(join(tmpRoot, `${m.hash.slice(0, 16)}-`));
    let done = 0;
    const started = performance.now();
    onProgress?.({ phase: 'download', bytesDone: 0, bytesTotal: m.totalSize });
    try {
      await downloadOnce(storage, m, folder, opts.stallMs, opts.hashOffThread, (file, n) => {
        done += n;
        onProgress?.({ phase: 'download', bytesDone: done, bytesTotal: m.totalSize, file });
      });
      return { folder, ms: performance.now() - started };
    } catch (err) {
      lastError = err;
      await rm(folder, { recursive: true, force: true });
      // Nothing of a failed attempt counts: progress says so while the retry waits.
      onProgress?.({ phase: 'download', bytesDone: 0, bytesTotal: m.totalSize });
      if (attempt < opts.attempts) await sleep(opts.retryDelayMs * 2 ** (attempt - 1));
    }
  }
  const why = lastError instanceof Error ? lastError.message : String(lastError);
  throw new ModelFetchError(m.hash, `could not fetch model ${m.name} (${m.hash.slice(0, 12)}) from the bucket after ${opts.attempts} tries: ${why}`);
}
