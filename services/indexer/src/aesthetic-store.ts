/**
 * The aesthetic scores in the catalog: `images.aesthetic` beside the vector
 * it was computed from, with `images.aesthetic_head` naming the head. The
 * upsert clears both when the vector changes (catalog.ts), and a score is
 * written only if the row's `seq` is still the one whose vector was scored,
 * so a score never outlives its vector. Only rows embedded by the current
 * CLIP model and scored by the current head count.
 */
import { blobVector, type Catalog } from './catalog.js';

export interface UnscoredRow {
  id: number;
  seq: number;
  vector: Float32Array;
}

export interface ScoreMark {
  id: number;
  seq: number;
  score: number;
}

/** Rows of the current model without a score from this head, in id order after `afterId`; `sweep` narrows to one sweep. */
export function unscoredRows(catalog: Catalog, model: string, head: string, limit: number, afterId = 0, sweep?: string): UnscoredRow[] {
  const rows = catalog.db
    .prepare(
      `SELECT id, seq, vector FROM images
        WHERE model = ? AND (aesthetic_head IS NULL OR aesthetic_head != ?) AND id > ? ${sweep === undefined ? '' : 'AND sweep_id = ?'}
        ORDER BY id LIMIT ?`,
    )
    .all(model, head, afterId, ...(sweep === undefined ? [] : [sweep]), limit) as { id: number; seq: number; vector: Buffer }[];
  return rows.map((r) => ({ id: r.id, seq: r.seq, vector: blobVector(r.vector) }));
}

/** The given rows, when embedded by the current model, to be scored. */
export function rowsById(catalog: Catalog, model: string, ids: readonly number[]): UnscoredRow[] {
  const rows = catalog.db
    .prepare('SELECT id, seq, vector FROM images WHERE model = ? AND id IN (SELECT value FROM json_each(?)) ORDER BY id')
    .all(model, JSON.stringify(ids)) as { id: number; seq: number; vector: Buffer }[];
  return rows.map((r) => ({ id: r.id, seq: r.seq, vector: blobVector(r.vector) }));
}

/** Those of the given images that the current model embedded and this head has not scored (the rows a ranking is about to show). */
export function unscoredOf(catalog: Catalog, model: string, head: string, renderKeys: readonly string[]): UnscoredRow[] {
  const rows = catalog.db
    .prepare(
      `SELECT id, seq, vector FROM images
        WHERE model = ? AND (aesthetic_head IS NULL OR aesthetic_head != ?) AND render_key IN (SELECT value FROM json_each(?))
        ORDER BY id`,
    )
    .all(model, head, JSON.stringify(renderKeys)) as { id: number; seq: number; vector: Buffer }[];
  return rows.map((r) => ({ id: r.id, seq: r.seq, vector: blobVector(r.vector) }));
}

/**
 * Writes scores; a row whose seq moved on since it was read (re-embedded
 * meanwhile) is left alone. Derived data (redone at start when missing), so
 * the commit skips the fsync the rows' own commit needs. Returns rows written.
 */
export function setScores(catalog: Catalog, head: string, marks: readonly ScoreMark[]): number {
  const stmt = catalog.db.prepare('UPDATE images SET aesthetic = ?, aesthetic_head = ? WHERE id = ? AND seq = ?');
  catalog.db.pragma('synchronous = NORMAL');
  try {
    return catalog.db.transaction(() => marks.reduce((n, m) => n + stmt.run(m.score, head, m.id, m.seq).changes, 0))();
  } finally {
    catalog.db.pragma('synchronous = FULL');
  }
}

/** The k best-scored rows (ties by renderKey), best first; `sweep` narrows, `starred: false` leaves out favorites. */
export function topScored(catalog: Catalog, model: string, head: string, k: number, o: { sweep?: string; starred?: boolean } = {}): Map<number, number> {
  const where = ['i.model = ?', 'i.aesthetic_head = ?'];
  const params: (string | number)[] = [model, head];
  if (o.sweep !== undefined) {
    where.push('i.sweep_id = ?');
    params.push(o.sweep);
  }
  if (o.starred === false) where.push('NOT EXISTS (SELECT 1 FROM favorites f WHERE f.render_key = i.render_key)');
  const rows = catalog.db
    .prepare(`SELECT i.id AS id, i.aesthetic AS score FROM images i WHERE ${where.join(' AND ')} ORDER BY i.aesthetic DESC, i.render_key LIMIT ?`)
    .all(...params, k) as { id: number; score: number }[];
  return new Map(rows.map((r) => [r.id, r.score]));
}

/** This head's scores of the given images, by renderKey (images it has not scored are absent). */
export function scoresOf(catalog: Catalog, head: string, renderKeys: readonly string[]): Map<string, number> {
  const rows = catalog.db
    .prepare('SELECT render_key, aesthetic AS score FROM images WHERE aesthetic_head = ? AND render_key IN (SELECT value FROM json_each(?))')
    .all(head, JSON.stringify(renderKeys)) as { render_key: string; score: number }[];
  return new Map(rows.map((r) => [r.render_key, r.score]));
}

/** How many of the current model's rows this head has scored, and how many wait. */
export function scoreCounts(catalog: Catalog, model: string, head: string): { scored: number; unscored: number } {
  const r = catalog.db
    .prepare('SELECT COUNT(*) AS total, COALESCE(SUM(aesthetic_head = ?), 0) AS scored FROM images WHERE model = ?')
    .get(head, model) as { total: number; scored: number };
  return { scored: r.scored, unscored: r.total - r.scored };
}
