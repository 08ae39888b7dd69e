/**
 * IndexStore: the catalog (SQLite, durable) and the vector index (memory,
 * snapshotted) kept in step, plus near-duplicate marking.
 *
 * Write order, which is what makes redelivery and crashes harmless:
 *   1. rows (metadata + vector + model) committed to SQLite, synchronous=FULL;
 *   2. vectors added to the in-memory index;
 *   3. the caller acks the events.
 * A crash after 1 loses nothing (the rows are there; at start the snapshot is
 * caught up from rows changed since it was written) and a redelivered event
 * finds its row already current and is acked without a second entry.
 *
 * Near-duplicates: image X is marked a duplicate of Y when Y is earlier
 * (stored in S3 earlier, to the second, then renderKey: the order a rebuild
 * from the bucket sees too) and within `dupDistance` cosine distance; of
 * several, the nearest. Each new image checks its neighbours both ways (it
 * may be earlier than images already indexed), so the marks do not depend on
 * the order images arrive in, and a reindex from the bucket reproduces them.
 */
import { join } from 'node:path';
import type { Logger } from '@nightshift/common';
import { Catalog, isoTime, type CatalogInfo, type ImageMeta } from './catalog.js';
import { VectorIndex, type VectorIndexOptions } from './vector-index.js';

export interface StoreOptions extends Omit<VectorIndexOptions, 'dim'> {
  /** Cosine distance (1 − similarity) within which a later image is marked a near-duplicate; < 0 disables. */
  dupDistance: number;
  /** Neighbours examined per image for duplicates. */
  dupNeighbours?: number;
}

export interface StoredItem {
  meta: ImageMeta;
  vector: Float32Array;
}

const SNAPSHOT = 'vectors.usearch';

export class IndexStore {
  readonly index: VectorIndex;
  private changedSinceSnapshot = 0;
  /** How the index was brought up at open: for logs and tests. */
  openedBy: 'empty' | 'snapshot' | 'rebuild' = 'empty';
  caughtUp = 0;

  private constructor(
    readonly catalog: Catalog,
    readonly model: { id: string; dim: number },
    readonly opts: StoreOptions,
    readonly dataDir: string,
    private readonly log: Logger,
  ) {
    this.index = new VectorIndex({ ...opts, dim: model.dim });
  }

  get snapshotFile(): string {
    return join(this.dataDir, SNAPSHOT);
  }

  /**
   * Opens the catalog and brings the vector index up: from the snapshot when
   * its sidecar matches (model, dimension, epoch), caught up with rows changed
   * since; else rebuilt from the catalog's vectors.
   */
  static open(dataDir: string, model: { id: string; dim: number }, opts: StoreOptions, log: Logger): IndexStore {
    const catalog = new Catalog(join(dataDir, 'indexer.sqlite'));
    const s = new IndexStore(catalog, model, opts, dataDir, log);
    try {
      s.bringUp();
    } catch (err) {
      catalog.close();
      throw err;
    }
    return s;
  }

  private bringUp(): void {
    const c = this.catalog;
    const want = c.count(this.model.id);
    const info = VectorIndex.snapshotInfo(this.snapshotFile);
    const usable =
      info &&
      info.model === this.model.id &&
      info.dim === this.model.dim &&
      info.epoch === c.epoch &&
      info.seq <= c.seq &&
      info.quantization === (this.opts.quantization ?? 'f32') &&
      info.connectivity === (this.opts.connectivity ?? 16);
    const started = performance.now();
    if (usable) {
      try {
        this.index.loadSnapshot(this.snapshotFile);
        if (this.index.needsFlat) for (const page of c.vectors(this.model.id)) this.index.fillFlat(page.map((r) => r.id), page.map((r) => r.vector));
        // Rows written after the snapshot (e.g. stored, then a crash before the next save).
        for (const page of c.vectors(this.model.id, info.seq)) {
          this.index.upsert(page.map((r) => r.id), page.map((r) => r.vector));
          this.caughtUp += page.length;
        }
        if (this.index.size === want) {
          this.openedBy = 'snapshot';
          this.log.info({ size: want, caughtUp: this.caughtUp, ms: Math.round(performance.now() - started) }, 'vector index loaded from snapshot');
          if (this.caughtUp) this.changedSinceSnapshot = this.caughtUp;
          return;
        }
        this.log.warn({ snapshot: this.index.size, catalog: want }, 'vector index snapshot disagrees with the catalog: rebuilding');
      } catch (err) {
        this.log.warn({ err: String(err) }, 'vector index snapshot unreadable: rebuilding');
      }
      this.index.clear();
      this.caughtUp = 0;
    } else if (info) {
      this.log.info({ snapshot: info, model: this.model.id, epoch: c.epoch }, 'vector index snapshot is for another model or epoch: rebuilding');
    }
    for (const page of c.vectors(this.model.id)) this.index.upsert(page.map((r) => r.id), page.map((r) => r.vector));
    this.openedBy = want ? 'rebuild' : 'empty';
    if (want) {
      this.log.info({ size: want, ms: Math.round(performance.now() - started) }, 'vector index rebuilt from the catalog');
      this.changedSinceSnapshot = want;
    }
  }

  /**
   * True when this event's image is already stored as it would be now (same
   * key, time and model): a redelivery, acked without work.
   */
  isCurrent(renderKey: string, key: string, createdAt: string, info = this.catalog.get(renderKey)): boolean {
    return !!info && info.model === this.model.id && info.key === key && (info.source === 'bucket' || info.created_at === isoTime(createdAt));
  }

  /** Stores a batch durably, then indexes it and marks near-duplicates. Returns the row ids. */
  store(batch: readonly StoredItem[], gen?: number): number[] {
    // One entry per renderKey even within a batch (the last wins, as a later upsert would).
    const items = [...new Map(batch.map((it) => [it.meta.renderKey, it])).values()];
    if (!items.length) return [];
    const ids = this.catalog.upsert(items.map((it) => ({ meta: it.meta, model: this.model.id, vector: it.vector, ...(gen !== undefined ? { gen } : {}) })));
    this.index.upsert(ids, items.map((it) => it.vector));
    this.changedSinceSnapshot += ids.length;
    this.markDuplicates(ids, items.map((it) => it.vector));
    return ids;
  }

  /**
   * (Re)computes the near-duplicate marks of `ids` (whose vectors are given)
   * and updates later neighbours for which one of them is now the nearest
   * earlier image.
   */
  markDuplicates(ids: readonly number[], vectors: readonly Float32Array[]): void {
    const limit = this.opts.dupDistance;
    const marks = new Map<number, { id: number; dupOf: number | null; distance: number | null }>();
    if (limit < 0) {
      this.catalog.setDuplicates(ids.map((id) => ({ id, dupOf: null, distance: null })));
      return;
    }
    const k = this.opts.dupNeighbours ?? 16;
    const near = vectors.map((v, i) => this.index.search(v, k + 1).filter((h) => h.id !== ids[i] && 1 - h.score <= limit));
    // Two catalog reads for the whole batch: the batch's rows, then their neighbours'.
    const infos = this.catalog.dupInfos([...new Set([...ids, ...near.flat().map((h) => h.id)])]);
    const inBatch = new Set(ids);
    ids.forEach((id, i) => {
      const me = infos.get(id);
      if (!me) return;
      let best: { id: number; distance: number } | undefined;
      for (const h of near[i]!) {
        const other = infos.get(h.id);
        if (!other) continue;
        const distance = Math.max(0, 1 - h.score);
        if (earlier(other, me)) {
          if (!best || distance < best.distance) best = { id: h.id, distance };
        } else if (!inBatch.has(h.id)) {
          // I am earlier than this neighbour: I may be its nearest earlier image now.
          const current = marks.get(h.id) ?? (other.dup_of === null ? undefined : { id: h.id, dupOf: other.dup_of, distance: other.dup_distance });
          if (!current || current.distance === null || distance < current.distance) marks.set(h.id, { id: h.id, dupOf: id, distance });
        }
      }
      marks.set(id, { id, dupOf: best?.id ?? null, distance: best?.distance ?? null });
    });
    this.catalog.setDuplicates([...marks.values()]);
  }

  /** Checks rows whose marks are missing (e.g. a crash between the row commit and the marks). */
  checkPendingDuplicates(page = 512): number {
    let done = 0;
    for (;;) {
      const ids = this.catalog.uncheckedDuplicates(this.model.id, page);
      if (!ids.length) return done;
      const vectors = ids.map((id) => this.catalog.vector(id)!);
      this.markDuplicates(ids, vectors);
      done += ids.length;
    }
  }

  /** Removes rows (and their vectors); bumps the epoch so old snapshots are rebuilt. */
  prune(gen: number): number {
    const gone = this.catalog.pruneOlderThan(gen);
    if (gone.length) {
      this.index.remove(gone.filter((id) => this.index.has(id)));
      this.checkPendingDuplicates();
      this.saveSnapshot(true);
    }
    return gone.length;
  }

  /** Saves the HNSW snapshot when anything changed since the last one (or when forced). */
  saveSnapshot(force = false): boolean {
    if (!force && this.changedSinceSnapshot === 0) return false;
    const started = performance.now();
    this.index.save(this.snapshotFile, { model: this.model.id, epoch: this.catalog.epoch, seq: this.catalog.seq });
    this.changedSinceSnapshot = 0;
    this.log.debug({ size: this.index.size, ms: Math.round(performance.now() - started) }, 'vector index snapshot saved');
    return true;
  }

  close(): void {
    try {
      this.saveSnapshot();
    } finally {
      this.catalog.close();
    }
  }
}

/** The order in which "earlier" is meant for near-duplicates. */
export function earlier(a: Pick<CatalogInfo, 'stored_at' | 'render_key'>, b: Pick<CatalogInfo, 'stored_at' | 'render_key'>): boolean {
  return a.stored_at < b.stored_at || (a.stored_at === b.stored_at && a.render_key < b.render_key);
}
