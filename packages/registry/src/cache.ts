/**
 * The node-side model cache: `ensure(hash)` gives a local folder holding the
 * model's files, downloading it from the bucket when missing.
 *
 * - Single flight: concurrent ensures of one hash share one download (and
 *   every caller's progress callback hears it).
 * - Verified: each downloaded file's sha256 is checked before the folder is
 *   renamed into place; a corrupt or cut-off attempt is deleted and retried
 *   (bounded, then ModelFetchError).
 * - Corruption on disk: the first ensure of a model after the cache is
 *   opened re-hashes every file; later ensures re-hash only files whose
 *   stamp (size, mtime, ctime, inode, device: file-stamp.ts) changed since
 *   they were last hashed; a write that sets the mtime back still moves the
 *   ctime. So switching between cached models reads nothing again, and
 *   `{ verify: true }` forces a full check. A model that fails is fetched again.
 * - Size cap: least-recently-used models are evicted to make room, never one
 *   that is in use (`acquire`/`release`, or `use`, which does both) or being
 *   ensured. When only in-use models are left the cap is exceeded for the
 *   moment and restored as they are released; a model larger than the cap
 *   itself is refused.
 * - For nodes to advertise: `downloads()` in progress (bytes done/total) and
 *   `downloadBytesPerSecond()`, measured over the last few downloads large
 *   enough to measure the link rather than per-request overhead.
 */
import { assertModelHash, sleep } from '@nightshift/common';
import type { RegistryStorage } from './bucket.js';
import { CacheDisk, type CachedModel } from './cache-disk.js';
import { readManifest } from './catalog.js';
import { fetchModel, ModelFetchError, type FetchOptions, type Fetched } from './fetch-model.js';
import { ManifestError, type ModelManifest } from './manifest.js';
import type { OnProgress, TransferProgress } from './progress.js';

export type CacheEvent =
  | { type: 'corrupt' | 'evicted'; hash: string }
  | { type: 'downloaded'; hash: string; name: string; bytes: number; ms: number }
  /** A cached copy passed a check that read and hashed `bytes` of it again (`full`: all of it); one that trusted every stamp read nothing and says nothing. */
  | { type: 'rehashed'; hash: string; bytes: number; full: boolean };

export interface ModelCacheOptions extends Partial<FetchOptions> {
  /** Downloads smaller than this do not count towards the measured rate (default RATE_MIN_BYTES). */
  rateMinBytes?: number;
  /** Whether the cache folder's timestamps are fine-grained (file-stamp.ts); probed when not said. Tests set false for the coarse case. */
  fineTimestamps?: boolean;
  /** Told when a cached copy failed its check and is fetched again, when a model is evicted, and when one was downloaded. */
  onEvent?: (e: CacheEvent) => void;
}

export interface EnsureOptions {
  /** Re-hash every cached file even when its stamp is unchanged. */
  verify?: boolean;
}

export interface CacheEntryView {
  hash: string;
  name: string;
  size: number;
  inUse: boolean;
  lastUsedMs: number;
}

export interface DownloadView {
  hash: string;
  name: string;
  bytesDone: number;
  bytesTotal: number;
}

/** Downloads the rate is measured over: enough to smooth one slow request, few enough to follow a changed link. */
const RATE_WINDOW = 5;
/**
 * Smaller downloads say more about per-request overhead than about the link
 * (a 220 KB model measured 0.6 MB/s on a link that moves GBs at 100+), and
 * the rate is what the scheduler divides a big model's size by.
 */
export const RATE_MIN_BYTES = 8 * 1024 * 1024;

interface Flight {
  done: Promise<string>;
  /** The model's name, once its manifest is read. */
  name?: string;
  /** Asked to re-hash every cached file. */
  full: boolean;
  listeners: Set<OnProgress>;
  /** The latest progress, replayed to a caller that joins late. */
  last?: TransferProgress;
}

interface Entry extends CachedModel {
  /** Order of use within this run (ties of the clock are common in tests). */
  seq: number;
  verifiedThisRun: boolean;
}

export class ModelCache {
  private readonly disk: CacheDisk;
  private readonly entries = new Map<string, Entry>();
  private readonly refs = new Map<string, number>();
  private readonly flights = new Map<string, Flight>();
  /** Bytes promised to downloads in progress. */
  private reserved = 0;
  private seq = 0;
  /** The last few successful downloads, for the measured rate. */
  private readonly recent: { bytes: number; ms: number }[] = [];
  private opened?: Promise<void>;
  private readonly fetchOpts: FetchOptions;

  constructor(
    readonly dir: string,
    readonly capBytes: number,
    private readonly opts: ModelCacheOptions = {},
  ) {
    this.disk = new CacheDisk(dir, opts.fineTimestamps);
    this.fetchOpts = {
      attempts: opts.attempts ?? 3,
      retryDelayMs: opts.retryDelayMs ?? 1_000,
      stallMs: opts.stallMs ?? 60_000,
      ...(opts.hashOffThread !== undefined ? { hashOffThread: opts.hashOffThread } : {}),
    };
  }

  private open(): Promise<void> {
    this.opened ??= this.disk.open().then((found) => {
      for (const m of found.sort((a, b) => a.lastUsedMs - b.lastUsedMs)) {
        this.entries.set(m.manifest.hash, { ...m, seq: ++this.seq, verifiedThisRun: false });
      }
    });
    return this.opened;
  }

  /** Reads what the folder holds (done by the first ensure otherwise), so list() is right before any use: what a restarted node advertises. */
  ready(): Promise<void> {
    return this.open();
  }

  /** The local folder of `hash`, downloaded and verified if need be. */
  async ensure(hash: string, storage: RegistryStorage, onProgress?: OnProgress, opts: EnsureOptions = {}): Promise<string> {
    assertModelHash(hash);
    await this.open();
    let flight = this.flights.get(hash);
    if (flight && opts.verify && !flight.full) {
      // A cheaper check is under way: a caller that asked for the full one waits for it, then has its own.
      await flight.done.catch(() => undefined);
      return this.ensure(hash, storage, onProgress, opts);
    }
    if (!flight) {
      const f: Flight = { listeners: new Set(), done: Promise.resolve(''), full: opts.verify ?? false };
      const emit = (p: TransferProgress) => {
        f.last = p;
        for (const l of f.listeners) l(p);
      };
      f.done = this.run(hash, storage, emit, opts.verify ?? false, f).finally(() => this.flights.delete(hash));
      this.flights.set(hash, f);
      flight = f;
    } else if (flight.last && onProgress) {
      onProgress(flight.last);
    }
    if (onProgress) flight.listeners.add(onProgress);
    try {
      return await flight.done;
    } finally {
      if (onProgress) flight.listeners.delete(onProgress);
    }
  }

  /** ensure + acquire with no gap between them: the folder cannot be evicted until `release()`. */
  async use(hash: string, storage: RegistryStorage, onProgress?: OnProgress, opts: EnsureOptions = {}): Promise<{ path: string; release: () => void }> {
    this.acquire(hash);
    try {
      const path = await this.ensure(hash, storage, onProgress, opts);
      let released = false;
      return {
        path,
        release: () => {
          if (!released) this.release(hash);
          released = true;
        },
      };
    } catch (err) {
      this.release(hash);
      throw err;
    }
  }

  /** Marks a model in use (it may not be cached yet): it is never evicted until released as many times. */
  acquire(hash: string): void {
    this.refs.set(assertModelHash(hash), (this.refs.get(hash) ?? 0) + 1);
  }

  release(hash: string): void {
    const n = (this.refs.get(hash) ?? 0) - 1;
    if (n > 0) this.refs.set(hash, n);
    else this.refs.delete(hash);
    const e = this.entries.get(hash);
    if (e) e.seq = ++this.seq;
    void this.makeRoom(0).catch(() => undefined);
  }

  /** What the cache holds now (for nodes to advertise). */
  list(): CacheEntryView[] {
    return [...this.entries.values()].map((e) => ({
      hash: e.manifest.hash,
      name: e.manifest.name,
      size: e.manifest.totalSize,
      inUse: (this.refs.get(e.manifest.hash) ?? 0) > 0,
      lastUsedMs: e.lastUsedMs,
    }));
  }

  /** Downloads in progress (a cached model being re-checked is not one). */
  downloads(): DownloadView[] {
    const out: DownloadView[] = [];
    for (const [hash, f] of this.flights) {
      if (f.last?.phase === 'download') out.push({ hash, name: f.name ?? '', bytesDone: f.last.bytesDone, bytesTotal: f.last.bytesTotal });
    }
    return out;
  }

  /** Bytes per second over the last few downloads of at least `rateMinBytes` (bytes-weighted); 0 (unmeasured) until one has finished. */
  downloadBytesPerSecond(): number {
    const bytes = this.recent.reduce((n, r) => n + r.bytes, 0);
    const ms = this.recent.reduce((n, r) => n + r.ms, 0);
    return ms > 0 ? (bytes * 1000) / ms : 0;
  }

  /** Bytes the cached models take. */
  usedBytes(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.manifest.totalSize;
    return n;
  }

  private async run(hash: string, storage: RegistryStorage, emit: OnProgress, verify: boolean, flight: Flight): Promise<string> {
    const cached = this.entries.get(hash);
    if (cached) {
      const full = verify || !cached.verifiedThisRun;
      let checked = 0;
      const ok = await this.disk.check(cached, full, (n) => {
        checked += n;
        emit({ phase: 'verify', bytesDone: checked, bytesTotal: cached.manifest.totalSize });
      });
      if (ok) {
        if (checked > 0) this.opts.onEvent?.({ type: 'rehashed', hash, bytes: checked, full });
        cached.verifiedThisRun ||= full;
        await this.used(cached);
        return this.disk.modelDir(hash);
      }
      this.opts.onEvent?.({ type: 'corrupt', hash });
      // Its bytes stay counted until the fresh copy replaces it.
    }
    const manifest = cached?.manifest ?? (await this.manifestOf(hash, storage));
    flight.name = manifest.name;
    if (manifest.totalSize > this.capBytes) {
      throw new ModelFetchError(hash, `model ${manifest.name} (${hash.slice(0, 12)}) is ${manifest.totalSize} bytes, more than the cache's cap of ${this.capBytes}`);
    }
    const incoming = cached ? 0 : manifest.totalSize;
    this.reserved += incoming;
    try {
      await this.makeRoom(0);
      let fetched: Fetched;
      try {
        await this.disk.prepare();
        fetched = await fetchModel(storage, manifest, this.disk.tmpDir, this.fetchOpts, emit);
      } catch (err) {
        // A corrupt copy that could not be replaced is not advertised as cached (unless a job still holds it).
        if (cached && !this.refs.has(hash)) {
          this.entries.delete(hash);
          await this.disk.remove(hash);
        }
        throw err;
      }
      if (manifest.totalSize >= (this.opts.rateMinBytes ?? RATE_MIN_BYTES)) {
        this.recent.push({ bytes: manifest.totalSize, ms: fetched.ms });
        if (this.recent.length > RATE_WINDOW) this.recent.shift();
      }
      this.opts.onEvent?.({ type: 'downloaded', hash, name: manifest.name, bytes: manifest.totalSize, ms: fetched.ms });
      const model = await this.disk.install(manifest, fetched.folder);
      this.entries.set(hash, { ...model, seq: ++this.seq, verifiedThisRun: true });
    } finally {
      this.reserved -= incoming;
    }
    await this.makeRoom(0);
    return this.disk.modelDir(hash);
  }

  /** The manifest from the bucket; an unreachable bucket is tried again like a download (attempts, doubling delay), a missing manifest is final. */
  private async manifestOf(hash: string, storage: RegistryStorage): Promise<ModelManifest> {
    let manifest: ModelManifest | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        manifest = await readManifest(storage, hash);
        break;
      } catch (err) {
        // A manifest that is there but invalid (hostile paths, bad JSON) stays so: refused at once.
        if (err instanceof ManifestError || err instanceof SyntaxError) throw new ModelFetchError(hash, `the manifest of model ${hash.slice(0, 12)} is refused: ${err.message}`);
        if (attempt >= this.fetchOpts.attempts) {
          throw new ModelFetchError(hash, `cannot read the manifest of model ${hash.slice(0, 12)} from the bucket after ${attempt} tries: ${err instanceof Error ? err.message : String(err)}`);
        }
        await sleep(this.fetchOpts.retryDelayMs * 2 ** (attempt - 1));
      }
    }
    if (!manifest) throw new ModelFetchError(hash, `model ${hash.slice(0, 12)} is not in the registry (no models/${hash}/manifest.json)`);
    return manifest;
  }

  private async used(e: Entry): Promise<void> {
    e.seq = ++this.seq;
    e.lastUsedMs = Date.now();
    await this.disk.touch(e.manifest.hash);
  }

  /** Evicts least-recently-used models, never one in use or being ensured, until the cap holds `extra` more bytes. */
  private async makeRoom(extra: number): Promise<void> {
    const evictable = [...this.entries.values()]
      .filter((e) => !this.refs.has(e.manifest.hash) && !this.flights.has(e.manifest.hash))
      .sort((a, b) => a.seq - b.seq);
    for (const e of evictable) {
      if (this.usedBytes() + this.reserved + extra <= this.capBytes) return;
      // Re-check: a use may have started while an earlier eviction awaited.
      if (!this.entries.has(e.manifest.hash) || this.refs.has(e.manifest.hash) || this.flights.has(e.manifest.hash)) continue;
      this.entries.delete(e.manifest.hash);
      await this.disk.remove(e.manifest.hash);
      this.opts.onEvent?.({ type: 'evicted', hash: e.manifest.hash });
    }
  }
}
