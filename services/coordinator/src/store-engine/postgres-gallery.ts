/**
 * The PostgreSQL engine's gallery, album and metrics reads (gallery-face.ts):
 * gallery.ts's, albums.ts's and metrics.ts's queries in PostgreSQL, mapped to
 * the same shapes. Text sorts in byte order, as SQLite's does.
 */
import type pg from 'pg';
import { renderKeyOfImageRef } from '@nightshift/common';
import { detailOf, toImage, type GalleryDetailRow, type GalleryImage, type GalleryImageDetail, type GalleryRow, type ListQuery } from '../dashboard/gallery.js';
import type { JobRow } from '../store/rows.js';
import { byText, type FarmCounts, type GalleryEngine } from './gallery-face.js';

export class PgGallery implements GalleryEngine {
  constructor(private readonly pool: pg.Pool) {}

  async listImages(q: ListQuery, fileUrl: (key: string) => string, favorites?: Set<string>): Promise<{ total: number; images: GalleryImage[] }> {
    const where = [`announced = 1`, `image_key LIKE 'images/%'`];
    const args: unknown[] = [];
    if (q.sweep) where.push(`sweep_id = $${args.push(q.sweep)}`);
    if (q.owner !== undefined) where.push(`sweep_id IN (SELECT id FROM sweeps WHERE owner = $${args.push(q.owner)})`);
    if (q.renderKeys) {
      if (!q.renderKeys.length) return { total: 0, images: [] };
      where.push(`render_key = ANY($${args.push(q.renderKeys)})`);
    }
    const sql = where.join(' AND ');
    const total = (await this.pool.query<{ n: number }>(`SELECT COUNT(*) AS n FROM jobs WHERE ${sql}`, args)).rows[0]!.n;
    const { rows } = await this.pool.query<GalleryRow>(
      `SELECT id, sweep_id, render_key, image_key, thumb_key, prompt, seed FROM jobs WHERE ${sql}
        ORDER BY finished_at DESC, id COLLATE "C" DESC LIMIT $${args.length + 1} OFFSET $${args.length + 2}`,
      [...args, q.limit, q.offset],
    );
    return { total, images: rows.map((r) => toImage(r, fileUrl, favorites ? favorites.has(r.render_key) : null)) };
  }

  async imageDetail(key: string, fileUrl: (key: string) => string): Promise<GalleryImageDetail | undefined> {
    const r = (
      await this.pool.query<GalleryDetailRow>(
        `SELECT j.id, j.sweep_id, j.render_key, j.image_key, j.thumb_key, j.prompt, j.seed, j.params_json, j.backend, j.model, j.node_id, j.render_ms, j.finished_at,
                s.name AS sweep_name
           FROM jobs j JOIN sweeps s ON s.id = j.sweep_id
          WHERE j.render_key = $1 AND j.state IN ('done', 'skipped') AND j.image_key LIKE 'images/%'
          ORDER BY j.state = 'done' DESC, j.finished_at DESC LIMIT 1`,
        [renderKeyOfImageRef(key)],
      )
    ).rows[0];
    if (!r) return undefined;
    const maxSeed = (await this.pool.query<{ m: number | null }>('SELECT MAX(seed) AS m FROM jobs WHERE sweep_id = $1 AND prompt = $2', [r.sweep_id, r.prompt])).rows[0]!.m;
    return detailOf(r, maxSeed, fileUrl);
  }

  async albumJob(renderKey: string, owner: string): Promise<JobRow | undefined> {
    return (
      await this.pool.query<JobRow>(
        `SELECT j.* FROM jobs j JOIN sweeps s ON s.id = j.sweep_id WHERE j.render_key = $1 AND j.kind = 'render' AND j.state IN ('done', 'skipped') ORDER BY s.owner = $2 DESC LIMIT 1`,
        [renderKey, owner],
      )
    ).rows[0];
  }

  async upscaled(renderKey: string): Promise<boolean> {
    return (await this.pool.query(`SELECT 1 FROM jobs WHERE render_key = $1 AND kind = 'upscale' AND state = 'done' LIMIT 1`, [renderKey])).rows.length > 0;
  }

  async farmCounts(): Promise<FarmCounts> {
    const jobs = (await this.pool.query<{ state: string; n: number }>('SELECT state, SUM(n) AS n FROM sweep_counts GROUP BY state HAVING SUM(n) > 0')).rows;
    const sweeps = (await this.pool.query<{ status: string; n: number }>('SELECT status, COUNT(*) AS n FROM sweeps GROUP BY status')).rows;
    return {
      jobs: jobs.sort(byText((r) => r.state)),
      nodes: (await this.pool.query<{ n: number }>('SELECT COUNT(*) AS n FROM nodes')).rows[0]!.n,
      outboxPending: (await this.pool.query<{ n: number }>('SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL')).rows[0]!.n,
      sweeps: sweeps.sort(byText((r) => r.status)),
    };
  }
}
