/**
 * sha256 of a stream, computed on a worker thread while the bytes keep
 * arriving on the main one. A download hashed on the main thread spent
 * ~68 ms of it per 128 MB (sha256 at ~1.9 GB/s here) in the socket's data
 * handler, time in which nothing was read from the socket or written to
 * disk; on the worker it runs beside them, and the digest is ready as soon
 * as the last batch arrives. Chunks are gathered into 1 MiB batches and
 * handed over without a copy (their memory moves to the worker).
 *
 * One worker per process, started at the first use and not keeping the
 * process alive; it serves every hash in flight (each has an id).
 *
 * Only where there is a core to spare: the batches cost a copy (~30 ms per
 * 128 MB) and the thread competes for CPU, so on a busy two-core machine
 * hashing each chunk inline as it arrives was faster (bench/model-fetch.ts
 * numbers in docs/design.md); `streamHash` picks.
 */
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** An incremental sha256 fed by a download. */
export interface StreamHash {
  update(chunk: Buffer): void;
  /** Bytes given and not yet hashed. */
  readonly pending: number;
  drained(bytes: number): Promise<void>;
  digest(): Promise<string>;
  drop(): void;
}

/** Cores from which a download's hash runs on the worker thread. */
export const OFF_THREAD_MIN_CORES = 4;

/** Off the main thread where the machine has cores to spare (or as asked), else inline. */
export function streamHash(offThread = availableParallelism() >= OFF_THREAD_MIN_CORES): StreamHash {
  return offThread ? new Sha256OffThread() : new Sha256Inline();
}

/** Each chunk hashed on the spot, on the calling thread. */
export class Sha256Inline implements StreamHash {
  private readonly h = createHash('sha256');
  readonly pending = 0;
  update(chunk: Buffer): void {
    this.h.update(chunk);
  }
  drained(): Promise<void> {
    return Promise.resolve();
  }
  digest(): Promise<string> {
    return Promise.resolve(this.h.digest('hex'));
  }
  drop(): void {}
}

const BATCH = 1 << 20;

const SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  if (m.data) {
    let h = hashes.get(m.id);
    if (!h) hashes.set(m.id, (h = createHash('sha256')));
    h.update(m.data);
    parentPort.postMessage({ id: m.id, acked: m.data.byteLength });
  } else if (m.end) {
    const h = hashes.get(m.id) ?? createHash('sha256');
    hashes.delete(m.id);
    parentPort.postMessage({ id: m.id, hex: h.digest('hex') });
  } else if (m.drop) {
    hashes.delete(m.id);
  }
});
`;

type Reply = { id: number; acked: number } | { id: number; hex: string };

interface Shared {
  worker: Worker;
  hashes: Map<number, Sha256OffThread>;
}

let shared: Shared | undefined;
let nextId = 0;

function pool(): Shared {
  if (shared) return shared;
  const worker = new Worker(SOURCE, { eval: true });
  worker.unref();
  const s: Shared = { worker, hashes: new Map() };
  worker.on('message', (r: Reply) => s.hashes.get(r.id)?.reply(r));
  const fail = (err: unknown) => {
    if (shared === s) shared = undefined;
    for (const h of s.hashes.values()) h.fail(err instanceof Error ? err : new Error(`the sha256 worker stopped: ${String(err)}`));
    s.hashes.clear();
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`the sha256 worker exited (${code})`)));
  shared = s;
  return s;
}

export class Sha256OffThread implements StreamHash {
  private readonly id = ++nextId;
  private readonly shared = pool();
  private batch: Buffer[] = [];
  private batchBytes = 0;
  /** Bytes handed to the worker and not yet hashed there. */
  private backlog = 0;
  private error?: Error;
  private result?: { resolve: (hex: string) => void; reject: (err: Error) => void };
  private waiters: { below: number; resolve: () => void }[] = [];

  constructor() {
    // Held while a hash is in flight, so a process awaiting a digest does not exit under it.
    if (this.shared.hashes.size === 0) this.shared.worker.ref();
    this.shared.hashes.set(this.id, this);
  }

  private forget(): boolean {
    if (!this.shared.hashes.delete(this.id)) return false;
    if (this.shared.hashes.size === 0) this.shared.worker.unref();
    return true;
  }

  /** Bytes given to update() and not yet hashed. */
  get pending(): number {
    return this.backlog + this.batchBytes;
  }

  /** Adds `chunk`, which must not change afterwards: it is held until its batch is copied out (a stream's chunks never do). */
  update(chunk: Buffer): void {
    if (this.error) throw this.error;
    this.batch.push(chunk);
    this.batchBytes += chunk.length;
    if (this.batchBytes >= BATCH) this.flush();
  }

  /** Resolves once no more than `bytes` are waiting to be hashed (for a reader to pause on). */
  drained(bytes: number): Promise<void> {
    if (this.pending <= bytes || this.error) return Promise.resolve();
    // What waits in a batch would wait there for more bytes.
    this.flush();
    return new Promise((resolve) => this.waiters.push({ below: bytes, resolve }));
  }

  /** The hex digest of everything given, once the worker has hashed it; the hash is finished. */
  digest(): Promise<string> {
    if (this.error) return Promise.reject(this.error);
    this.flush();
    return new Promise((resolve, reject) => {
      this.result = { resolve, reject };
      this.shared.worker.postMessage({ id: this.id, end: true });
    });
  }

  /** Abandons the hash (a failed download): the worker forgets it. */
  drop(): void {
    if (!this.forget()) return;
    this.batch = [];
    this.batchBytes = 0;
    this.shared.worker.postMessage({ id: this.id, drop: true });
  }

  private flush(): void {
    if (this.batchBytes === 0) return;
    const data = Buffer.concat(this.batch, this.batchBytes);
    this.batch = [];
    this.backlog += this.batchBytes;
    this.batchBytes = 0;
    // A batch of its own memory moves to the worker; one on a shared pool (small) is copied.
    const own = data.byteOffset === 0 && data.buffer.byteLength === data.length && data.buffer instanceof ArrayBuffer;
    this.shared.worker.postMessage({ id: this.id, data }, own ? [data.buffer as ArrayBuffer] : []);
  }

  /** @internal a message from the worker. */
  reply(r: Reply): void {
    if ('acked' in r) {
      this.backlog -= r.acked;
      this.waiters = this.waiters.filter((w) => (this.pending <= w.below ? (w.resolve(), false) : true));
      return;
    }
    this.forget();
    this.result?.resolve(r.hex);
  }

  /** @internal the worker died. */
  fail(err: Error): void {
    this.error = err;
    this.result?.reject(err);
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
  }
}
