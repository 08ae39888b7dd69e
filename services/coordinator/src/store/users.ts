/**
 * People and keys (issue 16): users, their API keys, their daily image
 * quota, and who owns a wildcard list. A key is kept as the SHA-256 of its
 * secret (as node tokens are): a leaked database enrols nobody. Every check
 * reads the table, so a revoked key is refused by the next request.
 * `running` is kept by a trigger (db.ts), never written here.
 */
import { randomBytes } from 'node:crypto';
import { WebhookStore } from './webhooks.js';

/** The user of the farm's own token (NIGHTSHIFT_API_TOKEN) and of a farm with no token at all; rows from before users are theirs. */
export const LOCAL_USER = 'local';

export interface UserRow {
  name: string;
  admin: 0 | 1;
  weight: number;
  quota_images: number | null;
  running: number;
  created_at: number;
}

export interface KeyedUser extends UserRow {
  /** Active keys (0 once revoked). */
  keys: number;
}

export interface NewUser {
  name: string;
  admin: boolean;
  weight: number;
  quotaImages: number | null;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** The start of `now`'s UTC day: quotas count images submitted since. */
export const utcDayStart = (now: number): number => now - (now % DAY_MS);

export class UserStore extends WebhookStore {
  /** The user whose active key has this hash (hex), if any. */
  userByKeyHash(hash: string): UserRow | undefined {
    return this.q('SELECT u.* FROM api_keys k JOIN users u ON u.name = k.user WHERE k.hash = ? AND k.revoked_at IS NULL').get(hash) as UserRow | undefined;
  }

  /** Whether any key is active: a farm with none (and no NIGHTSHIFT_API_TOKEN) is open to the local user. */
  hasActiveKeys(): boolean {
    return this.q('SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1').get() !== undefined;
  }

  getUser(name: string): UserRow | undefined {
    return this.q('SELECT * FROM users WHERE name = ?').get(name) as UserRow | undefined;
  }

  /** Every user with how many active keys they hold. */
  listUsers(): KeyedUser[] {
    return this.q(
      `SELECT u.*, (SELECT COUNT(*) FROM api_keys k WHERE k.user = u.name AND k.revoked_at IS NULL) AS keys FROM users u ORDER BY u.created_at, u.name`,
    ).all() as KeyedUser[];
  }

  /**
   * A new key for `user.name` (creating or updating the user: admin flag,
   * weight, quota); undefined when the user already holds an active key.
   * Only `hash` is stored; the caller shows the secret once.
   */
  addKey(user: NewUser, hash: string): { id: string } | undefined {
    return this.db.transaction(() => {
      if (this.q('SELECT 1 FROM api_keys WHERE user = ? AND revoked_at IS NULL').get(user.name)) return undefined;
      this.q(
        `INSERT INTO users (name, admin, weight, quota_images, created_at) VALUES (@name, @admin, @weight, @quota, @now)
         ON CONFLICT (name) DO UPDATE SET admin = @admin, weight = @weight, quota_images = @quota`,
      ).run({ name: user.name, admin: user.admin ? 1 : 0, weight: user.weight, quota: user.quotaImages, now: this.now() });
      const id = `key_${randomBytes(6).toString('hex')}`;
      this.q('INSERT INTO api_keys (id, user, hash, created_at) VALUES (?, ?, ?, ?)').run(id, user.name, hash, this.now());
      return { id };
    })();
  }

  /** Revokes every active key of `name`; how many. The user (and what they own) stays. */
  revokeKeys(name: string): number {
    return this.q('UPDATE api_keys SET revoked_at = ? WHERE user = ? AND revoked_at IS NULL').run(this.now(), name).changes;
  }

  /** The users holding an active admin key. */
  activeAdmins(): string[] {
    return (
      this.q('SELECT DISTINCT u.name FROM users u JOIN api_keys k ON k.user = u.name AND k.revoked_at IS NULL WHERE u.admin = 1 ORDER BY u.name').all() as { name: string }[]
    ).map((r) => r.name);
  }

  /** The user `name` if they hold an active key (a dashboard image cookie names its user, checked on each use). */
  activeUser(name: string): UserRow | undefined {
    return this.q('SELECT u.* FROM users u WHERE u.name = ? AND EXISTS (SELECT 1 FROM api_keys k WHERE k.user = u.name AND k.revoked_at IS NULL)').get(name) as UserRow | undefined;
  }

  /** Images (jobs) `owner` submitted since `since` (index sweeps_owner). */
  /** Whether a sweep of `owner` rendered this image (index jobs_render_key_finished). */
  imageOwnedBy(renderKey: string, owner: string): boolean {
    return (
      this.q(`SELECT 1 FROM jobs j JOIN sweeps s ON s.id = j.sweep_id WHERE j.render_key = ? AND j.state IN ('done', 'skipped') AND s.owner = ? LIMIT 1`).get(renderKey, owner) !==
      undefined
    );
  }

  /** Who owns a wildcard list, if anyone has written it since users came. */
  wildcardOwner(name: string): string | undefined {
    return (this.q('SELECT owner FROM wildcard_owners WHERE name = ?').get(name) as { owner: string } | undefined)?.owner;
  }

  setWildcardOwner(name: string, owner: string): void {
    this.q('INSERT INTO wildcard_owners (name, owner) VALUES (?, ?) ON CONFLICT (name) DO NOTHING').run(name, owner);
  }

  forgetWildcardOwner(name: string): void {
    this.q('DELETE FROM wildcard_owners WHERE name = ?').run(name);
  }

  /** The wildcard lists `owner` holds (names). */
  wildcardsOf(owner: string): string[] {
    return (this.q('SELECT name FROM wildcard_owners WHERE owner = ? ORDER BY name').all(owner) as { name: string }[]).map((r) => r.name);
  }
}
