/**
 * The gallery's data: every rendered image the coordinator knows (newest
 * first, a page at a time) and one image's full record. Text search and
 * "more like this" stay with the indexer (GET /api/search); favorites are
 * the indexer's too and are asked from it.
 */
import { renderKeyOfImageRef, thumbKey } from '@nightshift/common';
import type { DB } from '../db.js';

export interface GalleryImage {
  key: string;
  renderKey: string;
  url: string;
  thumbUrl: string;
  prompt: string;
  seed: number;
  sweepId: string;
  favorite: boolean | null;
}

export interface GalleryImageDetail extends GalleryImage {
  jobId: string;
  sweepName: string;
  params: Record<string, unknown>;
  backend: string;
  model: string;
  node: string | null;
  renderMs: number | null;
  finishedAt: string | null;
  /** First seed after every seed this prompt already has in its sweep ("render more seeds"). */
  nextSeed: number;
}

export interface GalleryRow {
  id: string;
  sweep_id: string;
  render_key: string;
  image_key: string;
  thumb_key: string | null;
  prompt: string;
  seed: number;
}

export const MAX_PAGE = 500;

export interface ListQuery {
  sweep?: string | undefined;
  /** Only these render keys (the favorites filter); undefined: no filter. */
  renderKeys?: string[] | undefined;
  /** Only the images of this user's sweeps; undefined: everyone's (an admin). */
  owner?: string;
  offset: number;
  limit: number;
}

/**
 * Rendered images, one row per image: the job that announced it (rendered it,
 * or found it stored but never announced); reruns that were skipped are not repeated.
 */
export function listImages(db: DB, q: ListQuery, fileUrl: (key: string) => string, favorites?: Set<string>): { total: number; images: GalleryImage[] } {
  const where = [`announced = 1`, `image_key LIKE 'images/%'`];
  const args: (string | number)[] = [];
  if (q.sweep) {
    where.push('sweep_id = ?');
    args.push(q.sweep);
  }
  if (q.owner !== undefined) {
    // A user's gallery is their own sweeps' images (issue 16).
    where.push('sweep_id IN (SELECT id FROM sweeps WHERE owner = ?)');
    args.push(q.owner);
  }
  if (q.renderKeys) {
    if (!q.renderKeys.length) return { total: 0, images: [] };
    where.push(`render_key IN (${q.renderKeys.map(() => '?').join(',')})`);
    args.push(...q.renderKeys);
  }
  const sql = where.join(' AND ');
  const total = (db.prepare(`SELECT COUNT(*) AS n FROM jobs WHERE ${sql}`).get(...args) as { n: number }).n;
  const rows = db
    .prepare(`SELECT id, sweep_id, render_key, image_key, thumb_key, prompt, seed FROM jobs WHERE ${sql} ORDER BY finished_at DESC, id DESC LIMIT ? OFFSET ?`)
    .all(...args, q.limit, q.offset) as GalleryRow[];
  return {
    total,
    images: rows.map((r) => toImage(r, fileUrl, favorites ? favorites.has(r.render_key) : null)),
  };
}

/** A gallery row as an image (shared with the PostgreSQL engine's gallery). */
export function toImage(r: GalleryRow, fileUrl: (key: string) => string, favorite: boolean | null): GalleryImage {
  return {
    key: r.image_key,
    renderKey: r.render_key,
    url: fileUrl(r.image_key),
    thumbUrl: fileUrl(r.thumb_key || thumbKey(r.render_key)),
    prompt: r.prompt,
    seed: r.seed,
    sweepId: r.sweep_id,
    favorite,
  };
}

export interface GalleryDetailRow extends GalleryRow {
  sweep_name: string;
  params_json: string;
  backend: string;
  model: string;
  node_id: string | null;
  render_ms: number | null;
  finished_at: number | null;
}

/** One image by render key or image key, from the job that rendered it. */
export function imageDetail(db: DB, key: string, fileUrl: (key: string) => string): GalleryImageDetail | undefined {
  const renderKey = renderKeyOfImageRef(key);
  const r = db
    .prepare(
      `SELECT j.id, j.sweep_id, j.render_key, j.image_key, j.thumb_key, j.prompt, j.seed, j.params_json, j.backend, j.model, j.node_id, j.render_ms, j.finished_at,
              s.name AS sweep_name
       FROM jobs j JOIN sweeps s ON s.id = j.sweep_id
       WHERE j.render_key = ? AND j.state IN ('done', 'skipped') AND j.image_key LIKE 'images/%'
       ORDER BY j.state = 'done' DESC, j.finished_at DESC LIMIT 1`,
    )
    .get(renderKey) as GalleryDetailRow | undefined;
  if (!r) return undefined;
  const maxSeed = (db.prepare('SELECT MAX(seed) AS m FROM jobs WHERE sweep_id = ? AND prompt = ?').get(r.sweep_id, r.prompt) as { m: number | null }).m;
  return detailOf(r, maxSeed, fileUrl);
}

/** The detail of an image from its job's row and the highest seed its prompt has in the sweep (shared with the PostgreSQL engine). */
export function detailOf(r: GalleryDetailRow, maxSeed: number | null, fileUrl: (key: string) => string): GalleryImageDetail {
  return {
    ...toImage(r, fileUrl, null),
    jobId: r.id,
    sweepName: r.sweep_name,
    params: JSON.parse(r.params_json) as Record<string, unknown>,
    backend: r.backend,
    model: r.model,
    node: r.node_id,
    renderMs: r.render_ms,
    finishedAt: r.finished_at ? new Date(r.finished_at).toISOString() : null,
    nextSeed: Math.max(maxSeed ?? r.seed, r.seed) + 1,
  };
}
