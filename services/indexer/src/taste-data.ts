/**
 * One user's taste model's labels, read from the catalog: every image they
 * starred is a positive; every image they did not star in a sweep where they
 * starred at least one is a negative (another user's stars count for nothing). (The negatives are the images a person
 * looked at and did not star; nothing records views today, so a sweep the
 * person starred something in stands for "looked at".) Only rows embedded by
 * the current CLIP model count: other vectors are not comparable.
 *
 * Negatives beyond `maxNegatives` are thinned to an even stride (in id order,
 * so the same catalog gives the same set): the classes are weighted anyway,
 * and it bounds the time one training holds the event loop.
 */
import { blobVector, type Catalog } from './catalog.js';

export interface TrainingSet {
  vectors: Float32Array[];
  labels: boolean[];
  positives: number;
  negatives: number;
}

export const MAX_NEGATIVES = 20_000;

export function tasteTrainingSet(catalog: Catalog, model: string, user: string, maxNegatives = MAX_NEGATIVES): TrainingSet {
  const rows = catalog.db
    .prepare(
      `SELECT i.vector AS vector, (f.render_key IS NOT NULL) AS fav
         FROM images i LEFT JOIN favorites f ON f.render_key = i.render_key AND f.user = ?
        WHERE i.model = ?
          AND i.sweep_id IN (SELECT i2.sweep_id FROM favorites f2 JOIN images i2 ON i2.render_key = f2.render_key WHERE f2.user = ?)
        ORDER BY i.id`,
    )
    .all(user, model, user) as { vector: Buffer; fav: number }[];
  const allNegatives = rows.reduce((n, r) => n + (r.fav === 1 ? 0 : 1), 0);
  const stride = Math.max(1, allNegatives / maxNegatives);
  const vectors: Float32Array[] = [];
  const labels: boolean[] = [];
  let seen = 0;
  let next = 0;
  for (const r of rows) {
    const fav = r.fav === 1;
    if (!fav && seen++ < next) continue;
    if (!fav) next += stride;
    vectors.push(blobVector(r.vector));
    labels.push(fav);
  }
  const positives = labels.filter(Boolean).length;
  return { vectors, labels, positives, negatives: labels.length - positives };
}

/** `user`'s favorites with a current-model vector: what their taste model can learn from. */
export function usableFavorites(catalog: Catalog, model: string, user: string): number {
  return catalog.db.prepare('SELECT COUNT(*) FROM favorites f JOIN images i ON i.render_key = f.render_key WHERE f.user = ? AND i.model = ?').pluck().get(user, model) as number;
}
