/**
 * Registry models on a node (issue 14): a job whose assignment names a
 * `model_hash` gets that model's local folder from the node's ModelCache
 * (@nightshift/registry), downloaded from the bucket on demand. The cache
 * gives single-flight downloads (concurrent jobs wait on one), per-file
 * sha256 checks, bounded retries with backoff, and LRU eviction under the
 * size cap that never touches a model a job holds. A model that cannot be
 * had fails the job with ModelUnavailableError, which the worker reports as
 * JobFailed{model_unavailable}, so the job goes to another node.
 *
 * When a cached model is re-hashed: every file at the first use after the
 * node starts, and afterwards only a file whose stamp (size, mtime, ctime,
 * inode, device) differs from the one taken when it was last hashed. A write
 * that restores the file's mtime still moves its ctime, so a flipped byte is
 * caught at the next job that uses the model, while a node switching back
 * and forth between cached models reads none of their bytes again (it used
 * to re-hash the whole model at every switch: ~8 s per 4 GB).
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { Logger } from '@nightshift/common';
import type { ModelCacheStateSchema } from '@nightshift/proto';
import { ModelCache, ModelFetchError, type CacheEvent, type RegistryStorage } from '@nightshift/registry';
import type { ModelSettings } from './model-settings.js';

export type ModelCacheStateInit = MessageInitShape<typeof ModelCacheStateSchema>;

/** The job's model could not be fetched or verified here: it should go to another node. */
export class ModelUnavailableError extends Error {
  constructor(
    readonly hash: string,
    message: string,
  ) {
    super(message);
    this.name = 'ModelUnavailableError';
  }
}

export interface PulledModel {
  hash: string;
  /** The model's local folder: the files as they were added, at their relative paths. */
  path: string;
  /** Ends the job's hold: until then the folder is never evicted. */
  release(): void;
}

export interface NodeModelsOptions {
  settings: ModelSettings;
  storage: RegistryStorage;
  log: Logger;
  /** A download that receives nothing for this long is cut and retried (default 60 s). */
  stallMs?: number;
  /** Downloads below this size are left out of the advertised rate (default: the registry's RATE_MIN_BYTES); tests of tiny models set 0. */
  rateMinBytes?: number;
  /** Also told of every cache event (after the node's own logging): what tests count re-hashes and downloads with. */
  onCacheEvent?: (e: CacheEvent) => void;
}

const MB = 1024 * 1024;

export class NodeModels {
  readonly cache: ModelCache;
  /** The model the node rendered with last: what it has loaded now. */
  private loaded = '';

  constructor(private readonly opts: NodeModelsOptions) {
    const { settings, log } = opts;
    this.cache = new ModelCache(settings.dir, settings.capBytes, {
      attempts: settings.attempts,
      retryDelayMs: settings.retryDelayMs,
      ...(opts.stallMs ? { stallMs: opts.stallMs } : {}),
      ...(opts.rateMinBytes !== undefined ? { rateMinBytes: opts.rateMinBytes } : {}),
      onEvent: (e) => {
        if (e.type === 'downloaded') log.info({ hash: e.hash, model: e.name, bytes: e.bytes, ms: Math.round(e.ms), mbPerS: +(e.bytes / MB / (e.ms / 1000)).toFixed(1) }, 'model downloaded');
        else if (e.type === 'corrupt') log.warn({ hash: e.hash }, 'cached model failed its sha256 check: fetching it again');
        else if (e.type === 'rehashed') log.info({ hash: e.hash, bytes: e.bytes, full: e.full }, 'cached model re-hashed');
        else log.info({ hash: e.hash }, 'model evicted from the cache');
        opts.onCacheEvent?.(e);
      },
    });
  }

  /**
   * The folder of model `hash` for a job (on any backend: loading a model
   * checks it no differently from keeping it), held until release().
   * `label` names the model in errors (the job's model name). An abort stops
   * the wait, not the download: another job may be waiting on it too.
   */
  async use(hash: string, label: string, signal: AbortSignal): Promise<PulledModel> {
    signal.throwIfAborted();
    if (!this.cache.list().some((e) => e.hash === hash)) this.opts.log.info({ hash, model: label }, 'model not in the cache: pulling it from the bucket');
    const pending = this.cache.use(hash, this.opts.storage);
    let held: { path: string; release: () => void };
    try {
      held = await abortable(pending, signal);
    } catch (err) {
      if (signal.aborted) {
        pending.then((m) => m.release(), () => undefined);
        throw err;
      }
      throw unavailable(hash, label, err);
    }
    this.loaded = hash;
    return { hash, path: held.path, release: held.release };
  }

  /** Reads the cache folder, so the first Register already lists the models kept from an earlier run. */
  async open(): Promise<void> {
    await this.cache.ready();
  }

  /** What the node tells the coordinator on Register and every Heartbeat. */
  state(): ModelCacheStateInit {
    return {
      cachedHashes: this.cache.list().map((e) => e.hash),
      loadedHash: this.loaded,
      downloads: this.cache.downloads().map((d) => ({ hash: d.hash, name: d.name, bytesDone: BigInt(d.bytesDone), bytesTotal: BigInt(d.bytesTotal) })),
      downloadBytesPerS: this.cache.downloadBytesPerSecond(),
    };
  }
}

function unavailable(hash: string, label: string, err: unknown): ModelUnavailableError {
  const why = err instanceof Error ? err.message : String(err);
  const what = err instanceof ModelFetchError ? 'could not be fetched' : 'could not be cached on this node';
  return new ModelUnavailableError(hash, `model ${label} (${hash.slice(0, 12)}) ${what}: ${why}`);
}

/** Settles with `p`, or rejects with the signal's reason as soon as it aborts. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error('cancelled'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
