/**
 * The indexer's durable side, in SQLite beside the vector index file: one row
 * per renderKey with the image's metadata, the model that embedded it and the
 * vector itself. This table, not the usearch file, is what a restart trusts:
 * the HNSW file is a snapshot that is validated against it and caught up (or
 * rebuilt) from it. S3 stays the source of truth above both (`reindex`).
 *
 * Favorites (per user and image) and upscale variants live in tables of
 * their own keyed by renderKey, so a rebuild from the bucket keeps them. The tables and their
 * migration: catalog-schema.ts; filters as SQL: catalog-filter.ts.
 */
import Database from 'better-sqlite3';
import { renderKeyOf, type ImageRenderedEvent } from '@nightshift/common';
import { INFO_COLUMNS, blobVector, migrate, vectorBlob, type CatalogInfo } from './catalog-schema.js';
import { filterWhere, type Filter } from './catalog-filter.js';

export { blobVector, vectorBlob, type CatalogInfo, type CatalogRow } from './catalog-schema.js';
export type { Filter } from './catalog-filter.js';

/** What the indexer knows about one rendered image, from its event or from the bucket: the event's fields, less the render time. */
export interface ImageMeta extends Omit<ImageRenderedEvent, 'model' | 'renderMs'> {
  /** The generator's model (not the CLIP model). */
  renderModel: string;
  /**
   * When S3 stored the image (its Last-Modified, whole seconds): the order
   * both the event path and a rebuild from the bucket can see, so it is what
   * "earlier" means for near-duplicates. Empty: not known yet.
   */
  storedAt: string;
  source: 'event' | 'bucket';
}

export interface Variant {
  key: string;
  render_key: string;
  source_key: string;
  model: string;
  created_at: string;
}

/** ISO-8601 in UTC with milliseconds, so that text comparison is time order; unparseable text stays as it is. */
export function isoTime(s: string): string {
  const t = Date.parse(s);
  return Number.isNaN(t) ? s : new Date(t).toISOString();
}

export class Catalog {
  readonly db: Database.Database;
  private readonly stmts;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // FULL: a committed batch survives power loss too, and events are acked only after the commit.
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    migrate(this.db);
    this.stmts = {
      upsert: this.db.prepare(`
        INSERT INTO images (render_key, key, sweep_id, job_id, prompt, seed, params_json, backend, render_model, node, created_at, stored_at, model, vector, seq, source, gen, dup_checked)
        VALUES (@render_key, @key, @sweep_id, @job_id, @prompt, @seed, @params_json, @backend, @render_model, @node, @created_at, @stored_at, @model, @vector, @seq, @source, @gen, 0)
        ON CONFLICT (render_key) DO UPDATE SET key = excluded.key, sweep_id = excluded.sweep_id, job_id = excluded.job_id,
          prompt = excluded.prompt, seed = excluded.seed, params_json = excluded.params_json, backend = excluded.backend,
          render_model = excluded.render_model, node = CASE WHEN excluded.node = '' THEN images.node ELSE excluded.node END,
          created_at = CASE WHEN excluded.source = 'bucket' AND images.source = 'event' THEN images.created_at ELSE excluded.created_at END,
          stored_at = CASE WHEN excluded.stored_at = '' THEN images.stored_at ELSE excluded.stored_at END,
          model = excluded.model, vector = excluded.vector, seq = excluded.seq, gen = MAX(images.gen, excluded.gen), dup_checked = 0,
          -- an aesthetic score belongs to its vector: kept only while the vector is the same
          aesthetic = CASE WHEN excluded.vector = images.vector AND excluded.model = images.model THEN images.aesthetic END,
          aesthetic_head = CASE WHEN excluded.vector = images.vector AND excluded.model = images.model THEN images.aesthetic_head END,
          source = CASE WHEN images.source = 'event' THEN 'event' ELSE excluded.source END
        RETURNING id`),
      byRenderKey: this.db.prepare(`SELECT ${INFO_COLUMNS} FROM images WHERE render_key = ?`),
      byId: this.db.prepare(`SELECT ${INFO_COLUMNS} FROM images WHERE id = ?`),
      vectorById: this.db.prepare('SELECT vector FROM images WHERE id = ?').pluck(),
      variantByKey: this.db.prepare('SELECT render_key FROM variants WHERE key = ?').pluck(),
      setDup: this.db.prepare('UPDATE images SET dup_of = ?, dup_distance = ?, dup_checked = 1 WHERE id = ?'),
      getMeta: this.db.prepare('SELECT v FROM meta WHERE k = ?').pluck(),
      setMeta: this.db.prepare('INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v'),
    };
  }

  meta(k: string): string | undefined {
    return this.stmts.getMeta.get(k) as string | undefined;
  }

  setMeta(k: string, v: string): void {
    this.stmts.setMeta.run(k, v);
  }

  /** The change counter: every upsert gets a new value, so a snapshot knows what it is missing. */
  get seq(): number {
    return Number(this.meta('seq') ?? 0);
  }

  /** Bumped whenever rows are deleted, which a snapshot cannot catch up on: it is then rebuilt. */
  get epoch(): number {
    return Number(this.meta('epoch') ?? 0);
  }

  /** The latest reindex generation (set when a reindex from the bucket starts). */
  get gen(): number {
    return Number(this.meta('gen') ?? 0);
  }

  /**
   * Inserts or replaces by renderKey in one transaction and returns the rows' ids (stable across replacement).
   * A row without a generation (a live event) gets the latest one: a reindex running meanwhile has
   * not listed it, or listed it before this write, and must not prune it. A row's generation never goes down.
   */
  upsert(items: readonly { meta: ImageMeta; model: string; vector: Float32Array; gen?: number }[]): number[] {
    return this.db.transaction(() => {
      const seq = this.seq + 1;
      this.setMeta('seq', String(seq));
      const current = this.gen;
      return items.map(({ meta: m, model, vector, gen }) => {
        const row = this.stmts.upsert.get({
          render_key: m.renderKey,
          key: m.key,
          sweep_id: m.sweepId,
          job_id: m.jobId,
          prompt: m.prompt,
          seed: m.seed,
          params_json: JSON.stringify(m.params ?? {}),
          backend: m.backend,
          render_model: m.renderModel,
          node: m.node,
          created_at: isoTime(m.createdAt),
          stored_at: m.storedAt ? isoTime(m.storedAt) : '',
          model,
          vector: vectorBlob(vector),
          seq,
          source: m.source,
          gen: gen ?? current,
        }) as { id: number };
        return row.id;
      });
    })();
  }

  get(renderKey: string): CatalogInfo | undefined {
    return this.stmts.byRenderKey.get(renderKey) as CatalogInfo | undefined;
  }

  byId(id: number): CatalogInfo | undefined {
    return this.stmts.byId.get(id) as CatalogInfo | undefined;
  }

  /** The renderKey an API key names: `images/RK.png`, `upscaled/RK.png` (its original), `thumbs/RK.webp` or RK itself. */
  resolve(key: string): string | undefined {
    const variant = this.stmts.variantByKey.get(key) as string | undefined;
    if (variant) return variant;
    const rk = renderKeyOf(key) ?? key;
    return this.get(rk) ? rk : undefined;
  }

  vector(id: number): Float32Array | undefined {
    const b = this.stmts.vectorById.get(id) as Buffer | undefined;
    return b ? blobVector(b) : undefined;
  }

  infos(ids: readonly number[]): Map<number, CatalogInfo> {
    return this.byIds(ids, INFO_COLUMNS);
  }

  /** Just what near-duplicate marking needs. */
  dupInfos(ids: readonly number[]): Map<number, Pick<CatalogInfo, 'id' | 'render_key' | 'stored_at' | 'dup_of' | 'dup_distance'>> {
    return this.byIds(ids, 'id, render_key, stored_at, dup_of, dup_distance');
  }

  private byIds<T extends { id: number }>(ids: readonly number[], columns: string): Map<number, T> {
    const out = new Map<number, T>();
    // json_each: one prepared statement for any number of ids.
    const rows = this.db.prepare(`SELECT ${columns} FROM images WHERE id IN (SELECT value FROM json_each(?))`).all(JSON.stringify(ids)) as T[];
    for (const r of rows) out.set(r.id, r);
    return out;
  }

  count(model?: string): number {
    const sql = model === undefined ? 'SELECT COUNT(*) FROM images' : 'SELECT COUNT(*) FROM images WHERE model = ?';
    return this.db.prepare(sql).pluck().get(...(model === undefined ? [] : [model])) as number;
  }

  countStale(model: string): number {
    return this.db.prepare('SELECT COUNT(*) FROM images WHERE model != ?').pluck().get(model) as number;
  }

  /** (id, vector) of the model's rows, in id order, in pages, optionally only those changed after `afterSeq`. */
  *vectors(model: string, afterSeq = -1, page = 4096): Generator<{ id: number; vector: Float32Array }[]> {
    const stmt = this.db.prepare('SELECT id, vector FROM images WHERE model = ? AND seq > ? AND id > ? ORDER BY id LIMIT ?');
    let last = 0;
    for (;;) {
      const rows = stmt.all(model, afterSeq, last, page) as { id: number; vector: Buffer }[];
      if (!rows.length) return;
      yield rows.map((r) => ({ id: r.id, vector: blobVector(r.vector) }));
      last = rows[rows.length - 1]!.id;
    }
  }

  /** Rows embedded by another model, oldest first: the background re-embedding's work list. */
  stale(model: string, limit: number, afterId = 0): CatalogInfo[] {
    return this.db.prepare(`SELECT ${INFO_COLUMNS} FROM images WHERE model != ? AND id > ? ORDER BY id LIMIT ?`).all(model, afterId, limit) as CatalogInfo[];
  }

  /** Ids of rows whose near-duplicate mark must be (re)computed. */
  uncheckedDuplicates(model: string, limit: number): number[] {
    return this.db.prepare('SELECT id FROM images WHERE model = ? AND dup_checked = 0 ORDER BY id LIMIT ?').pluck().all(model, limit) as number[];
  }

  /**
   * Near-duplicate marks are derived data (rows keep dup_checked = 0 until
   * marked, and unmarked rows are re-checked at start), so their commit skips
   * the fsync that the rows' own commit needs.
   */
  setDuplicates(marks: readonly { id: number; dupOf: number | null; distance: number | null }[]): void {
    this.db.pragma('synchronous = NORMAL');
    try {
      this.db.transaction(() => {
        for (const m of marks) this.stmts.setDup.run(m.dupOf, m.distance, m.id);
      })();
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  /** Forgets the duplicate marks of one model's rows (its vectors changed wholesale). */
  resetDuplicates(model: string): void {
    this.db.prepare('UPDATE images SET dup_of = NULL, dup_distance = NULL, dup_checked = 0 WHERE model = ?').run(model);
  }

  /** Deletes rows not seen by reindex generation `gen` and returns their ids; rows that pointed at them get a duplicate re-check. */
  pruneOlderThan(gen: number): number[] {
    return this.db.transaction(() => {
      const gone = this.db.prepare('SELECT id FROM images WHERE gen < ?').pluck().all(gen) as number[];
      if (!gone.length) return gone;
      this.db.prepare('UPDATE images SET dup_checked = 0 WHERE dup_of IN (SELECT id FROM images WHERE gen < ?)').run(gen);
      this.db.prepare('DELETE FROM images WHERE gen < ?').run(gen);
      this.setMeta('epoch', String(this.epoch + 1));
      return gone;
    })();
  }

  countWhere(f: Filter): number {
    const w = filterWhere(f);
    return this.db.prepare(`SELECT COUNT(*) FROM images WHERE ${w.sql}`).pluck().get(...w.params) as number;
  }

  /** (id, vector) of every row matching the filter, for exact search over a subset. */
  vectorsWhere(f: Filter): { ids: number[]; vectors: Float32Array[] } {
    const w = filterWhere(f);
    const rows = this.db.prepare(`SELECT id, vector FROM images WHERE ${w.sql}`).all(...w.params) as { id: number; vector: Buffer }[];
    return { ids: rows.map((r) => r.id), vectors: rows.map((r) => blobVector(r.vector)) };
  }

  /** The subset of `ids` that match the filter. */
  acceptIds(f: Filter, ids: readonly number[]): Set<number> {
    const w = filterWhere(f);
    const out = new Set<number>();
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      const rows = this.db.prepare(`SELECT id FROM images WHERE id IN (${chunk.map(() => '?').join(',')}) AND ${w.sql}`).pluck().all(...chunk, ...w.params) as number[];
      for (const id of rows) out.add(id);
    }
    return out;
  }

  // ------------------------------------------------------------ favorites
  // Per (user, image): the user is the coordinator's (X-Nightshift-User, users.ts), `local` without one.

  setFavorite(user: string, renderKey: string, favorite: boolean): void {
    if (favorite) this.db.prepare('INSERT INTO favorites (user, render_key, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING').run(user, renderKey, new Date().toISOString());
    else this.db.prepare('DELETE FROM favorites WHERE user = ? AND render_key = ?').run(user, renderKey);
  }

  /** Which of `renderKeys` `user` starred. */
  favorites(user: string, renderKeys: readonly string[]): Set<string> {
    const rows = this.db
      .prepare('SELECT render_key FROM favorites WHERE user = ? AND render_key IN (SELECT value FROM json_each(?))')
      .pluck()
      .all(user, JSON.stringify(renderKeys)) as string[];
    return new Set(rows);
  }

  /** `user`'s favorites (oldest first) with their image's key and sweep; `sweep` narrows to one sweep's images. */
  allFavorites(user: string, sweep?: string): { render_key: string; key: string | null; sweep_id: string | null }[] {
    const sql = `SELECT f.render_key, i.key, i.sweep_id FROM favorites f LEFT JOIN images i ON i.render_key = f.render_key
      WHERE f.user = ? ${sweep ? 'AND i.sweep_id = ?' : ''} ORDER BY f.created_at, f.render_key`;
    return this.db.prepare(sql).all(user, ...(sweep ? [sweep] : [])) as { render_key: string; key: string | null; sweep_id: string | null }[];
  }

  /** How many images `user` starred (of one sweep, when named). */
  favoriteCount(user: string, sweep?: string): number {
    const sql = sweep
      ? 'SELECT COUNT(*) FROM favorites f JOIN images i ON i.render_key = f.render_key WHERE f.user = ? AND i.sweep_id = ?'
      : 'SELECT COUNT(*) FROM favorites WHERE user = ?';
    return this.db.prepare(sql).pluck().get(user, ...(sweep ? [sweep] : [])) as number;
  }

  /** Everyone who starred something. */
  favoriteUsers(): string[] {
    return this.db.prepare('SELECT DISTINCT user FROM favorites ORDER BY user').pluck().all() as string[];
  }

  // ------------------------------------------------------------- variants

  addVariant(v: Variant): void {
    this.db
      .prepare(
        `INSERT INTO variants (key, render_key, source_key, model, created_at) VALUES (@key, @render_key, @source_key, @model, @created_at)
         ON CONFLICT (key) DO UPDATE SET render_key = excluded.render_key, source_key = excluded.source_key,
           model = CASE WHEN excluded.model = '' THEN variants.model ELSE excluded.model END`,
      )
      .run({ ...v, created_at: isoTime(v.created_at) });
  }

  variants(renderKeys: readonly string[]): Map<string, Variant[]> {
    const out = new Map<string, Variant[]>();
    for (let i = 0; i < renderKeys.length; i += 500) {
      const chunk = renderKeys.slice(i, i + 500);
      const rows = this.db.prepare(`SELECT * FROM variants WHERE render_key IN (${chunk.map(() => '?').join(',')}) ORDER BY created_at, key`).all(...chunk) as Variant[];
      for (const r of rows) out.set(r.render_key, [...(out.get(r.render_key) ?? []), r]);
    }
    return out;
  }

  variantCount(): number {
    return this.db.prepare('SELECT COUNT(*) FROM variants').pluck().get() as number;
  }

  close(): void {
    this.db.close();
  }
}
