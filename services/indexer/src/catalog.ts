/**
 * The indexer's durable side: one SQLite row per renderKey with the image's
 * metadata, the model that embedded it, and the vector itself. The in-memory
 * search index is rebuilt from here at start, so this table is the index's
 * source of truth on disk (and S3 remains the source of truth above it).
 */
import Database from 'better-sqlite3';
import type { ImageRenderedEvent } from '@nightshift/common';

export interface CatalogEntry {
  render_key: string;
  key: string;
  sweep_id: string;
  job_id: string;
  prompt: string;
  seed: number;
  params_json: string;
  node: string;
  model: string;
  created_at: string;
  favorite: number;
  vector: Buffer;
}

export class Catalog {
  readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS images (
        render_key TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        sweep_id TEXT NOT NULL,
        job_id TEXT NOT NULL,
        prompt TEXT NOT NULL,
        seed INTEGER NOT NULL,
        params_json TEXT NOT NULL,
        node TEXT NOT NULL,
        model TEXT NOT NULL,
        created_at TEXT NOT NULL,
        favorite INTEGER NOT NULL DEFAULT 0,
        vector BLOB NOT NULL
      );
      CREATE INDEX IF NOT EXISTS images_sweep ON images (sweep_id);
    `);
  }

  /** Inserts or replaces entries by renderKey in one transaction; favorites survive re-indexing. */
  upsert(items: { event: ImageRenderedEvent; model: string; vector: Float32Array }[]): void {
    const stmt = this.db.prepare(`
      INSERT INTO images (render_key, key, sweep_id, job_id, prompt, seed, params_json, node, model, created_at, vector)
      VALUES (@render_key, @key, @sweep_id, @job_id, @prompt, @seed, @params_json, @node, @model, @created_at, @vector)
      ON CONFLICT (render_key) DO UPDATE SET key = excluded.key, sweep_id = excluded.sweep_id, job_id = excluded.job_id,
        prompt = excluded.prompt, seed = excluded.seed, params_json = excluded.params_json, node = excluded.node,
        model = excluded.model, created_at = excluded.created_at, vector = excluded.vector`);
    this.db.transaction(() => {
      for (const { event: e, model, vector } of items) {
        stmt.run({
          render_key: e.renderKey,
          key: e.key,
          sweep_id: e.sweepId,
          job_id: e.jobId,
          prompt: e.prompt,
          seed: e.seed,
          params_json: JSON.stringify(e.params),
          node: e.node,
          model,
          created_at: e.createdAt,
          vector: Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength),
        });
      }
    })();
  }

  get(renderKey: string): CatalogEntry | undefined {
    return this.db.prepare('SELECT * FROM images WHERE render_key = ?').get(renderKey) as CatalogEntry | undefined;
  }

  byKey(key: string): CatalogEntry | undefined {
    return this.db.prepare('SELECT * FROM images WHERE key = ? OR render_key = ?').get(key, key) as CatalogEntry | undefined;
  }

  all(): CatalogEntry[] {
    return this.db.prepare('SELECT * FROM images ORDER BY rowid').all() as CatalogEntry[];
  }

  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM images').get() as { n: number }).n;
  }

  setFavorite(renderKey: string, favorite: boolean): boolean {
    return this.db.prepare('UPDATE images SET favorite = ? WHERE render_key = ?').run(favorite ? 1 : 0, renderKey).changes === 1;
  }

  close(): void {
    this.db.close();
  }
}

export function vectorOf(entry: CatalogEntry): Float32Array {
  const b = entry.vector;
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
