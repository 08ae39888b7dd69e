/**
 * What the dashboard's gallery, albums and the /metrics scrape read straight
 * from the database today (dashboard/gallery.ts, albums.ts, metrics.ts: raw
 * SQL on the SQLite handle, no Store method), as one async face. The SQLite
 * engine calls gallery.ts's own functions and runs albums.ts's and
 * metrics.ts's queries read-only on the Store's handle; the PostgreSQL engine
 * has them in postgres-gallery.ts, and the conformance suite holds the two equal.
 */
import { listImages, imageDetail, type GalleryImage, type GalleryImageDetail, type ListQuery } from '../dashboard/gallery.js';
import type { DB } from '../db.js';
import type { JobRow } from '../store/rows.js';

/** The farm's totals a /metrics scrape reads (counters, never a scan of jobs). */
export interface FarmCounts {
  /** Jobs by state (from the per-sweep counters), the states that have any, by name. */
  jobs: { state: string; n: number }[];
  nodes: number;
  outboxPending: number;
  sweeps: { status: string; n: number }[];
}

export interface GalleryEngine {
  /** gallery.ts's listImages: rendered images, newest first, a page of them, with the total. */
  listImages(q: ListQuery, fileUrl: (key: string) => string, favorites?: Set<string>): Promise<{ total: number; images: GalleryImage[] }>;
  /** gallery.ts's imageDetail: one image by render key or image key. */
  imageDetail(key: string, fileUrl: (key: string) => string): Promise<GalleryImageDetail | undefined>;
  /** albums.ts's read: the finished render of this image, `owner`'s own sweep's when they have one. */
  albumJob(renderKey: string, owner: string): Promise<JobRow | undefined>;
  /** Whether an upscale of this image is done. */
  upscaled(renderKey: string): Promise<boolean>;
  farmCounts(): Promise<FarmCounts>;
}

export const byText = <T>(key: (r: T) => string) => (a: T, b: T) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);

export class SqliteGallery implements GalleryEngine {
  constructor(private readonly db: DB) {}

  async listImages(q: ListQuery, fileUrl: (key: string) => string, favorites?: Set<string>): Promise<{ total: number; images: GalleryImage[] }> {
    return listImages(this.db, q, fileUrl, favorites);
  }

  async imageDetail(key: string, fileUrl: (key: string) => string): Promise<GalleryImageDetail | undefined> {
    return imageDetail(this.db, key, fileUrl);
  }

  async albumJob(renderKey: string, owner: string): Promise<JobRow | undefined> {
    return this.db
      .prepare(
        `SELECT j.* FROM jobs j JOIN sweeps s ON s.id = j.sweep_id WHERE j.render_key = ? AND j.kind = 'render' AND j.state IN ('done', 'skipped') ORDER BY s.owner = ? DESC LIMIT 1`,
      )
      .get(renderKey, owner) as JobRow | undefined;
  }

  async upscaled(renderKey: string): Promise<boolean> {
    return this.db.prepare(`SELECT 1 FROM jobs WHERE render_key = ? AND kind = 'upscale' AND state = 'done' LIMIT 1`).get(renderKey) !== undefined;
  }

  async farmCounts(): Promise<FarmCounts> {
    return {
      jobs: (this.db.prepare('SELECT state, SUM(n) AS n FROM sweep_counts GROUP BY state').all() as { state: string; n: number }[]).filter((r) => r.n > 0).sort(byText((r) => r.state)),
      nodes: (this.db.prepare('SELECT COUNT(*) AS n FROM nodes').get() as { n: number }).n,
      outboxPending: (this.db.prepare('SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL').get() as { n: number }).n,
      sweeps: (this.db.prepare('SELECT status, COUNT(*) AS n FROM sweeps GROUP BY status').all() as { status: string; n: number }[]).sort(byText((r) => r.status)),
    };
  }
}
