/**
 * The indexer catalog's tables (images, favorites, variants, meta), their
 * migration from older versions, and the row shape and vector encoding that
 * catalog.ts reads and writes.
 */
import Database from 'better-sqlite3';

export interface CatalogRow {
  id: number;
  render_key: string;
  key: string;
  sweep_id: string;
  job_id: string;
  prompt: string;
  seed: number;
  params_json: string;
  backend: string;
  render_model: string;
  node: string;
  created_at: string;
  stored_at: string;
  model: string;
  vector: Buffer;
  seq: number;
  dup_of: number | null;
  dup_distance: number | null;
  dup_checked: number;
  source: string;
  gen: number;
  /** The aesthetic head's score of `vector`, and which head gave it (null: not scored). */
  aesthetic: number | null;
  aesthetic_head: string | null;
}

/** A row without its vector (nor its aesthetic score, which aesthetic-store.ts reads), for results. */
export type CatalogInfo = Omit<CatalogRow, 'vector' | 'aesthetic' | 'aesthetic_head'>;

export const SCHEMA_VERSION = 3;
/** Every column but the vector. */
export const INFO_COLUMNS =
  'id, render_key, key, sweep_id, job_id, prompt, seed, params_json, backend, render_model, node, created_at, stored_at, model, seq, dup_of, dup_distance, dup_checked, source, gen';


export function vectorBlob(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

export function blobVector(b: Buffer): Float32Array {
  // Copy: the Buffer may be unaligned for a Float32Array view.
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/**
 * Version 0 was the walking skeleton's table (render_key primary key,
 * favorite column, no id); version 1 had no aesthetic scores; version 2 had
 * one star per image, nobody's in particular.
 */
export function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version === SCHEMA_VERSION) return;
  if (version > SCHEMA_VERSION) throw new Error(`indexer catalog has schema version ${version}, newer than this indexer (${SCHEMA_VERSION})`);
  db.transaction(() => {
    if (version === 0) createV2(db);
    if (version === 1) addAestheticColumns(db);
    favoritesPerUser(db);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}

/** Versions 0 (the walking skeleton's table, copied over) and none (a new catalog) to 2. */
function createV2(db: Database.Database): void {
  const hadV0 = !!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'images'").get();
  if (hadV0) db.exec('ALTER TABLE images RENAME TO images_v0; DROP INDEX IF EXISTS images_sweep;');
  db.exec(`
    CREATE TABLE images (
      id INTEGER PRIMARY KEY,            -- the key in the vector index
      render_key TEXT NOT NULL UNIQUE,
      key TEXT NOT NULL,
      sweep_id TEXT NOT NULL,
      job_id TEXT NOT NULL,
      prompt TEXT NOT NULL,
      seed INTEGER NOT NULL,
      params_json TEXT NOT NULL,
      backend TEXT NOT NULL DEFAULT '',
      render_model TEXT NOT NULL DEFAULT '',
      node TEXT NOT NULL DEFAULT '',
      created_at TEXT NOT NULL,          -- the render's time (event), or the object's (bucket)
      stored_at TEXT NOT NULL DEFAULT '', -- the object's Last-Modified: the near-duplicate order
      model TEXT NOT NULL,               -- the CLIP model that made the vector
      vector BLOB NOT NULL,              -- float32, L2-normalised
      seq INTEGER NOT NULL,              -- change counter: what a vector-index snapshot has seen
      dup_of INTEGER,                    -- id of the nearest earlier near-duplicate
      dup_distance REAL,
      dup_checked INTEGER NOT NULL DEFAULT 0,
      source TEXT NOT NULL DEFAULT 'event',
      gen INTEGER NOT NULL DEFAULT 0     -- reindex generation, for pruning what the bucket no longer has
    );
    CREATE INDEX images_sweep ON images (sweep_id);
    CREATE INDEX images_created ON images (created_at);
    CREATE INDEX images_seq ON images (seq);
    CREATE INDEX images_model ON images (model);
    CREATE INDEX images_key ON images (key);
    CREATE TABLE favorites (render_key TEXT PRIMARY KEY, created_at TEXT NOT NULL);
    CREATE TABLE variants (
      key TEXT PRIMARY KEY,               -- upscaled/{renderKey}.png
      render_key TEXT NOT NULL,           -- the original's
      source_key TEXT NOT NULL,
      model TEXT NOT NULL,
      created_at TEXT NOT NULL
    );
    CREATE INDEX variants_render_key ON variants (render_key);
    CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
  `);
  addAestheticColumns(db);
  if (hadV0) {
    db.exec(`
      INSERT INTO images (id, render_key, key, sweep_id, job_id, prompt, seed, params_json, node, created_at, stored_at, model, vector, seq)
        SELECT rowid, render_key, key, sweep_id, job_id, prompt, seed, params_json, node, created_at, created_at, model, vector, 1 FROM images_v0;
      INSERT INTO favorites (render_key, created_at) SELECT render_key, created_at FROM images_v0 WHERE favorite = 1;
      DROP TABLE images_v0;
      INSERT INTO meta (k, v) VALUES ('seq', '1');
    `);
  }
}

/** The user whose stars a version-2 catalog held: the coordinator's `local` (the farm token's, and everyone's on a farm without users). */
export const LOCAL_USER = 'local';

/**
 * Version 3: favorites are per (user, image), so two users who render the
 * same image each star it or not. Stars from before are the local user's,
 * and so is the taste model trained on them.
 */
function favoritesPerUser(db: Database.Database): void {
  db.exec(`
    CREATE TABLE favorites_v3 (
      user TEXT NOT NULL,                  -- the coordinator's user name (X-Nightshift-User)
      render_key TEXT NOT NULL,
      created_at TEXT NOT NULL,
      PRIMARY KEY (user, render_key)
    ) WITHOUT ROWID;
    INSERT INTO favorites_v3 (user, render_key, created_at) SELECT '${LOCAL_USER}', render_key, created_at FROM favorites;
    DROP TABLE favorites;
    ALTER TABLE favorites_v3 RENAME TO favorites;
    CREATE INDEX favorites_render_key ON favorites (render_key);
    UPDATE meta SET k = 'taste.model:${LOCAL_USER}' WHERE k = 'taste.model';
  `);
}

/** Version 2: the aesthetic head's score beside the vector (aesthetic-store.ts). */
function addAestheticColumns(db: Database.Database): void {
  db.exec(`
    ALTER TABLE images ADD COLUMN aesthetic REAL;
    ALTER TABLE images ADD COLUMN aesthetic_head TEXT;
    CREATE INDEX images_aesthetic ON images (aesthetic_head, aesthetic);
  `);
}
