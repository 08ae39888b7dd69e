/**
 * Share links on PostgreSQL (store/shares.ts's rules): the row is the
 * share, deleting it revokes every copy of the link (its images go by
 * ON DELETE CASCADE); a render key listed twice keeps its first position.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { LOCAL_OWNER } from '../store/shares.js';
import type { ShareEngine, ShareRow } from './engine.js';
import { inTransaction } from './postgres-pool.js';
import { LOCK_NAMESPACE } from './postgres-schema.js';
import { CapReached } from '../store/limits.js';

const WITH_COUNT = `SELECT s.id, s.owner, s.title, s.created_at, s.expires_at, (SELECT COUNT(*) FROM share_images i WHERE i.share_id = s.id) AS images FROM shares s`;

export class PgShares implements ShareEngine {
  constructor(
    private readonly pool: pg.Pool,
    private readonly now: () => number,
  ) {}

  async create(s: { title: string; renderKeys: readonly string[]; expiresAt: number; owner?: string; maxLive?: number }): Promise<ShareRow> {
    const id = `sh_${randomBytes(12).toString('base64url')}`;
    await inTransaction(this.pool, async (c) => {
      if (s.maxLive !== undefined) {
        // One owner's creations take turns, whichever replica they reach: the later one counts the earlier.
        await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_NAMESPACE, `shares:${s.owner ?? LOCAL_OWNER}`]);
        const { rows } = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM shares WHERE owner = $1 AND expires_at > $2', [s.owner ?? LOCAL_OWNER, this.now()]);
        if (rows[0]!.n >= s.maxLive) throw new CapReached('live share links', s.maxLive);
      }
      await c.query('INSERT INTO shares (id, owner, title, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)', [id, s.owner ?? LOCAL_OWNER, s.title, this.now(), s.expiresAt]);
      await c.query(
        `INSERT INTO share_images (share_id, render_key, position)
         SELECT $1, k.rk, k.n - 1 FROM unnest($2::text[]) WITH ORDINALITY AS k (rk, n) ORDER BY k.n
         ON CONFLICT (share_id, render_key) DO NOTHING`,
        [id, [...s.renderKeys]],
      );
    });
    return (await this.get(id))!;
  }

  async live(id: string): Promise<ShareRow | undefined> {
    const row = await this.get(id);
    return row && row.expires_at > this.now() ? row : undefined;
  }

  async get(id: string): Promise<ShareRow | undefined> {
    return (await this.pool.query<ShareRow>(`${WITH_COUNT} WHERE s.id = $1`, [id])).rows[0];
  }

  async list(owner: string = LOCAL_OWNER): Promise<ShareRow[]> {
    return (await this.pool.query<ShareRow>(`${WITH_COUNT} WHERE s.owner = $1 ORDER BY s.created_at DESC, s.id`, [owner])).rows;
  }

  async listAll(): Promise<ShareRow[]> {
    return (await this.pool.query<ShareRow>(`${WITH_COUNT} ORDER BY s.created_at DESC, s.id`)).rows;
  }

  async renderKeys(id: string): Promise<string[]> {
    return (await this.pool.query<{ render_key: string }>('SELECT render_key FROM share_images WHERE share_id = $1 ORDER BY position', [id])).rows.map((r) => r.render_key);
  }

  async holds(id: string, renderKey: string): Promise<boolean> {
    return (await this.pool.query('SELECT 1 FROM share_images WHERE share_id = $1 AND render_key = $2', [id, renderKey])).rows.length > 0;
  }

  async delete(id: string, owner: string = LOCAL_OWNER): Promise<boolean> {
    return ((await this.pool.query('DELETE FROM shares WHERE id = $1 AND owner = $2', [id, owner])).rowCount ?? 0) > 0;
  }

  async pruneExpired(before: number = this.now()): Promise<number> {
    return (await this.pool.query('DELETE FROM shares WHERE expires_at <= $1', [before])).rowCount ?? 0;
  }
}
