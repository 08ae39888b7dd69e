/**
 * Share links (issue 15): a frozen list of images anyone holding the link's
 * token may see until it expires or is revoked. The token itself is never
 * stored (shares-token.ts signs the id and expiry); deleting the row revokes
 * every copy of the link at once. Each share has an owner, the local user
 * until users own what they make.
 *
 * Kept apart from the Store's class chain: shares touch no job, sweep or
 * outbox row, so they need none of its transaction or commit machinery.
 */
import { randomBytes } from 'node:crypto';
import type { Statement } from 'better-sqlite3';
import type { DB } from '../db.js';
import { statementCache } from './statements.js';
import { CapReached } from './limits.js';

/** Whoever owns rows made before users exist (store/users.ts LOCAL_USER). */
export const LOCAL_OWNER = 'local';

export interface ShareRow {
  id: string;
  owner: string;
  /** What was shared, for the owner's list: "favorites", "sweep sw_…", "3 images". */
  title: string;
  created_at: number;
  expires_at: number;
  images: number;
}

export class ShareStore {
  private readonly q: (sql: string) => Statement;

  constructor(
    private readonly db: DB,
    private readonly now: () => number = Date.now,
  ) {
    this.q = statementCache(db);
  }

  /** A share of `renderKeys` (in album order) until `expiresAt`. */
  /** `maxLive`: refused (CapReached) when the owner has that many live links already, counted in the insert's own transaction. */
  create(s: { title: string; renderKeys: readonly string[]; expiresAt: number; owner?: string; maxLive?: number }): ShareRow {
    const id = `sh_${randomBytes(12).toString('base64url')}`;
    this.db.transaction(() => {
      if (s.maxLive !== undefined && (this.q('SELECT count(*) AS n FROM shares WHERE owner = ? AND expires_at > ?').get(s.owner ?? LOCAL_OWNER, this.now()) as { n: number }).n >= s.maxLive) {
        throw new CapReached('live share links', s.maxLive);
      }
      this.q('INSERT INTO shares (id, owner, title, created_at, expires_at) VALUES (?, ?, ?, ?, ?)').run(id, s.owner ?? LOCAL_OWNER, s.title, this.now(), s.expiresAt);
      const add = this.q('INSERT OR IGNORE INTO share_images (share_id, render_key, position) VALUES (?, ?, ?)');
      s.renderKeys.forEach((rk, i) => add.run(id, rk, i));
    })();
    return this.get(id)!;
  }

  /** A share that exists and has not expired; undefined otherwise (revoked, expired, never made). */
  live(id: string): ShareRow | undefined {
    const row = this.get(id);
    return row && row.expires_at > this.now() ? row : undefined;
  }

  get(id: string): ShareRow | undefined {
    return this.q(`SELECT s.*, (SELECT COUNT(*) FROM share_images i WHERE i.share_id = s.id) AS images FROM shares s WHERE s.id = ?`).get(id) as ShareRow | undefined;
  }

  /** `owner`'s shares, newest first, expired ones included until pruned. */
  list(owner: string = LOCAL_OWNER): ShareRow[] {
    return this.q(`SELECT s.*, (SELECT COUNT(*) FROM share_images i WHERE i.share_id = s.id) AS images FROM shares s WHERE s.owner = ? ORDER BY s.created_at DESC, s.id`).all(owner) as ShareRow[];
  }

  /** Every owner's shares (an admin's listing), newest first. */
  listAll(): ShareRow[] {
    return this.q(`SELECT s.*, (SELECT COUNT(*) FROM share_images i WHERE i.share_id = s.id) AS images FROM shares s ORDER BY s.created_at DESC, s.id`).all() as ShareRow[];
  }

  /** The shared render keys in album order. */
  renderKeys(id: string): string[] {
    return (this.q('SELECT render_key FROM share_images WHERE share_id = ? ORDER BY position').all(id) as { render_key: string }[]).map((r) => r.render_key);
  }

  /** Whether the share holds this image (the only check between a token and an object). */
  holds(id: string, renderKey: string): boolean {
    return this.q('SELECT 1 FROM share_images WHERE share_id = ? AND render_key = ?').get(id, renderKey) !== undefined;
  }

  /** Revokes at once: the row goes, its images with it (ON DELETE CASCADE). */
  delete(id: string, owner: string = LOCAL_OWNER): boolean {
    return this.q('DELETE FROM shares WHERE id = ? AND owner = ?').run(id, owner).changes > 0;
  }

  /** Drops shares expired before `before` (they answer 404 already; this only frees their rows). */
  pruneExpired(before: number = this.now()): number {
    return this.q('DELETE FROM shares WHERE expires_at <= ?').run(before).changes;
  }
}
