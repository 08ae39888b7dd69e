/**
 * The PostgreSQL engine's listings (what the HTTP API, the dashboard and the
 * image checks read: store/sweeps.ts, store/jobs.ts, store/users.ts on
 * SQLite) and retention (old outbox and result rows deleted in small
 * batches; rows another replica is deleting are skipped, not waited for).
 * Text sorts in byte order (COLLATE "C"), as SQLite's do.
 */
import type pg from 'pg';
import type { JobRow, JobState, SweepRow } from '../store/rows.js';
import type { ListingEngine, RetentionEngine } from './engine-faces.js';

type Page = { offset: number; limit: number };

export class PgListings implements ListingEngine {
  constructor(private readonly pool: pg.Pool) {}

  async listSweeps(page?: Page, owner?: string): Promise<SweepRow[]> {
    const where = owner !== undefined ? 'WHERE owner = $1' : '';
    const args: unknown[] = owner !== undefined ? [owner] : [];
    const paged = page ? ` LIMIT $${args.length + 1} OFFSET $${args.length + 2}` : '';
    if (page) args.push(page.limit, page.offset);
    return (await this.pool.query<SweepRow>(`SELECT * FROM sweeps ${where} ORDER BY created_at DESC, id COLLATE "C"${paged}`, args)).rows;
  }

  async sweepCount(owner?: string): Promise<number> {
    const { rows } = owner !== undefined
      ? await this.pool.query<{ n: number }>('SELECT COUNT(*) AS n FROM sweeps WHERE owner = $1', [owner])
      : await this.pool.query<{ n: number }>('SELECT COUNT(*) AS n FROM sweeps');
    return rows[0]!.n;
  }

  async jobs(sweepId: string, states?: JobState[], page?: Page): Promise<JobRow[]> {
    const args: unknown[] = [sweepId];
    let sql = 'SELECT * FROM jobs WHERE sweep_id = $1';
    if (states?.length) sql += ` AND state = ANY($${args.push(states)})`;
    sql += ' ORDER BY idx';
    if (page) sql += ` LIMIT $${args.push(page.limit)} OFFSET $${args.push(page.offset)}`;
    return (await this.pool.query<JobRow>(sql, args)).rows;
  }

  async renderedJob(renderKey: string): Promise<JobRow | undefined> {
    return (await this.pool.query<JobRow>(`SELECT * FROM jobs WHERE render_key = $1 AND kind = 'render' AND state IN ('done', 'skipped') LIMIT 1`, [renderKey])).rows[0];
  }

  async results(jobIdValue: string): Promise<{ node_id: string; skipped: number; accepted: number; copy: number }[]> {
    return (await this.pool.query<{ node_id: string; skipped: number; accepted: number; copy: number }>('SELECT node_id, skipped, accepted, copy FROM results WHERE job_id = $1 ORDER BY id', [jobIdValue])).rows;
  }

  async imageOwnedBy(renderKey: string, owner: string): Promise<boolean> {
    const { rows } = await this.pool.query(
      `SELECT 1 FROM jobs j JOIN sweeps s ON s.id = j.sweep_id WHERE j.render_key = $1 AND j.state IN ('done', 'skipped') AND s.owner = $2 LIMIT 1`,
      [renderKey, owner],
    );
    return rows.length > 0;
  }

  /** Unpublished outbox rows, oldest first, claimed or not (the publisher claims with claimEvents). */
  async pendingEvents(limit: number): Promise<{ id: number; subject: string; msg_id: string; payload: string }[]> {
    return (await this.pool.query<{ id: number; subject: string; msg_id: string; payload: string }>('SELECT id, subject, msg_id, payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1', [limit]))
      .rows;
  }
}

export class PgRetention implements RetentionEngine {
  constructor(private readonly pool: pg.Pool) {}

  async pruneOutbox(before: number, limit: number): Promise<number> {
    const sql = 'DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE published_at < $1 ORDER BY published_at LIMIT $2 FOR UPDATE SKIP LOCKED)';
    return (await this.pool.query(sql, [before, limit])).rowCount ?? 0;
  }

  async pruneResults(before: number, limit: number): Promise<number> {
    const sql = 'DELETE FROM results WHERE id IN (SELECT id FROM results WHERE at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)';
    return (await this.pool.query(sql, [before, limit])).rowCount ?? 0;
  }
}
